"""Roles and record-level access: the one place that decides who may do what to which record.

Three questions, answered here and nowhere else:
1. May this role perform this kind of request at all (`PERMISSIONS`)? If not: 403.
2. Which records of a resource may this user see (`visibility`)? A record outside it answers
   404, exactly like an unknown id, so ids cannot be probed.
3. Does this user see the personal data in those records in clear (`PERSONAL_DATA`)? If not,
   every route shows it masked (`mask_document`, `redact_customer`).
Every route declares its (resource, action) with `Depends(allow(...))`; a test walks the route
table and fails for any route that declares none.
"""

from __future__ import annotations

from typing import Any, Literal

from api.masking import mask_personal
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
    "privacy",
    "campaigns",
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
        # Erasure and subject export (docs/privacy.md): admins only.
        "privacy": READ_WRITE,
        "campaigns": READ_WRITE,
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
        "campaigns": READ_WRITE,
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
        "campaigns": READ_WRITE,
    },
    # Leads and campaign analytics (not deal-level pipeline figures); customers read-only,
    # contact data masked unless the customer consented (PERSONAL_DATA below).
    "marketing": {
        "customers": READ,
        "leads": READ_WRITE,
        "tasks": READ_WRITE,
        "analytics": READ,
        "campaigns": READ_WRITE,  # enrolments need the customer's consent (domain rule)
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


# Who sees personal data (phones, emails, ID and bank numbers) in clear, within the records
# `visibility` admits: "clear" holds the right; "consent" sees a customer's own address in clear
# only on a channel the customer consented to, masked otherwise; "masked" always sees it masked
# (api/masking.py). Every role must be listed: a test fails for one that is not.
PersonalData = Literal["clear", "consent", "masked"]
PERSONAL_DATA: dict[Role, PersonalData] = {
    "admin": "clear",
    "manager": "clear",
    "sales": "clear",
    "service": "clear",
    "marketing": "consent",
    "auditor": "masked",
}


def has_personal_data_right(user: Principal) -> bool:
    """Whether the user sees personal data in clear (in the records they may see at all)."""
    return PERSONAL_DATA[user.role] == "clear"


def sees_contact_data(user: Principal, consents: dict[str, Any], channel: str) -> bool:
    """Whether the user sees a customer's address for `channel` ("email" or "phone") in clear."""
    if has_personal_data_right(user):
        return True
    if PERSONAL_DATA[user.role] != "consent":
        return False
    consent = consents.get(channel) or (consents.get("sms") if channel == "phone" else None)
    return bool(consent and consent.get("granted"))


def mask_document(user: Principal, document: dict[str, Any]) -> dict[str, Any]:
    """Any JSON document (event, state, row, export) with personal data masked for this user."""
    return document if has_personal_data_right(user) else mask_personal(document)


def redact_customer(user: Principal, document: dict[str, Any]) -> dict[str, Any]:
    """A customer document as this user may see it: personal data masked unless the user has
    the right (or, for the customer's own address, the customer's consent); no deals unless the
    user may read opportunities."""
    redacted = mask_document(user, document)
    if redacted is not document:
        # Consent covers the customer's own address, never its contacts'.
        consents = document.get("consents") or {}
        for field, channel in (("email", "email"), ("phone", "phone")):
            if field in document and sees_contact_data(user, consents, channel):
                redacted[field] = document[field]
    else:
        redacted = dict(document)
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
    """Whether a search by email or phone may match: not for users who see addresses masked,
    or a search could confirm one."""
    return has_personal_data_right(user)
