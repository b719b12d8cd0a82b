"""Roles and record-level access: the one place that decides who may do what to which record.

Two questions, answered here and nowhere else:
1. May this role perform this kind of request at all (`PERMISSIONS`)? If not: 403.
2. Which records of a resource may this user see (`visibility`)? A record outside it answers
   404, exactly like an unknown id, so ids cannot be probed.
Every route declares its (resource, action) with `Depends(allow(...))`; a test walks the route
table and fails for any route that declares none.
"""

from __future__ import annotations

from typing import Any, Literal

from api.security import Principal, Role
from projections.visibility import Visibility

Resource = Literal[
    "customers",
    "leads",
    "opportunities",
    "tickets",
    "tasks",
    "analytics",
    "pipeline",
    "sla",
    "audit",
    "events",
]
Action = Literal["read", "write"]

READ: frozenset[Action] = frozenset({"read"})
READ_WRITE: frozenset[Action] = frozenset({"read", "write"})

PERMISSIONS: dict[Role, dict[Resource, frozenset[Action]]] = {
    "admin": {
        "customers": READ_WRITE,
        "leads": READ_WRITE,
        "opportunities": READ_WRITE,
        "tickets": READ_WRITE,
        "tasks": READ_WRITE,
        "analytics": READ,
        "pipeline": READ,
        "sla": READ,
        "audit": READ,
        "events": READ,
    },
    # Everything, but only in their region (see `visibility`); no audit routes, no global stream.
    "manager": {
        "customers": READ_WRITE,
        "leads": READ_WRITE,
        "opportunities": READ_WRITE,
        "tickets": READ_WRITE,
        "tasks": READ_WRITE,
        "analytics": READ,
        "pipeline": READ,
        "sla": READ,
    },
    # What they own; tickets of their customers read-only.
    "sales": {
        "customers": READ_WRITE,
        "leads": READ_WRITE,
        "opportunities": READ_WRITE,
        "tickets": READ,
        "tasks": READ_WRITE,
        "analytics": READ,
        "pipeline": READ,
    },
    # Leads and campaign analytics (not deal-level pipeline figures); customers read-only,
    # contact data only with consent.
    "marketing": {
        "customers": READ,
        "leads": READ_WRITE,
        "tasks": READ_WRITE,
        "analytics": READ,
    },
    # Tickets; customer basics and contacts; no opportunities.
    "service": {"customers": READ, "tickets": READ_WRITE, "tasks": READ_WRITE, "sla": READ},
    # Read-only everything, including the audit routes; no commands.
    "auditor": {
        "customers": READ,
        "leads": READ,
        "opportunities": READ,
        "tickets": READ,
        "tasks": READ,
        "analytics": READ,
        "pipeline": READ,
        "sla": READ,
        "audit": READ,
        "events": READ,
    },
}


def permits(user: Principal, resource: Resource, action: Action) -> bool:
    """Whether the user's role may perform `action` on `resource` at all."""
    return action in PERMISSIONS[user.role].get(resource, frozenset())


def visibility(user: Principal, resource: Resource) -> Visibility:
    """The records of `resource` this user may see and act on."""
    if resource == "tasks":
        # Work is personal: everyone but admins and auditors sees the tasks assigned to them
        # or to their team (Principal.team); a manager's region does not widen that.
        if user.role in ("admin", "auditor"):
            return Visibility()
        return Visibility(assignee_or_team=(user.username, user.team))
    if user.role == "manager":
        # A manager without a region sees nothing rather than everything ("" is no region).
        return Visibility(region=user.region or "")
    if user.role == "sales":
        if resource == "leads":
            return Visibility(owner=user.username, or_unassigned_in_region=user.region)
        if resource == "tickets":
            return Visibility(customer_owner=user.username)
        if resource in ("analytics", "pipeline"):
            return Visibility(owner=user.username)
        return Visibility(owner=user.username)
    return Visibility()


def sees_contact_data(user: Principal, consents: dict[str, Any], channel: str) -> bool:
    """Whether the user may see a customer's address for `channel` ("email" or "phone")."""
    if user.role != "marketing":
        return True
    consent = consents.get(channel) or (consents.get("sms") if channel == "phone" else None)
    return bool(consent and consent.get("granted"))


def redact_customer(user: Principal, document: dict[str, Any]) -> dict[str, Any]:
    """A customer document as this user may see it (contact data hidden without consent)."""
    consents = document.get("consents") or {}
    redacted = dict(document)
    for field, channel in (("email", "email"), ("phone", "phone")):
        if field in redacted and not sees_contact_data(user, consents, channel):
            redacted[field] = None
    if user.role == "marketing" and "contacts" in redacted:
        redacted["contacts"] = [
            {**contact, "email": None, "phone": None} for contact in redacted["contacts"]
        ]
    if not permits(user, "opportunities", "read"):
        # Service and marketing see customer basics, but no deals.
        redacted.pop("won_totals", None)
        counts = dict(redacted.get("counts") or {})
        for key in [k for k in counts if "opportunit" in k]:
            counts.pop(key)
        if "counts" in redacted:
            redacted["counts"] = counts
    return redacted


def searches_contact_data(user: Principal) -> bool:
    """Whether a search by email or phone may match for this user (not for consent-bound roles)."""
    return user.role != "marketing"
