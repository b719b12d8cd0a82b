"""The one-line summaries of Customer 360° timeline entries, e.g. "Customer tagged: vip"."""

from __future__ import annotations

from functools import cache
from typing import Any

from domain.shared import DomainEvent

# What the timeline says after "<Aggregate> <what happened>", from the event's payload.
DETAILS = {
    "crm.customer.registered": "{name} ({kind}, {region})",
    "crm.customer.profile_updated": "{changed}",
    "crm.customer.contact_added": "{contact[name]}",
    "crm.customer.tagged": "{tag}",
    "crm.customer.untagged": "{tag}",
    "crm.customer.owner_assigned": "{previous_owner} → {owner}",
    "crm.customer.interaction_logged": "{kind}: {summary}",
    "crm.customer.consent_recorded": "{channel} {granted_or_withdrawn} ({legal_basis})",
    "crm.customer.tier_changed": "{previous_tier} → {tier}: {reason}",
    "crm.customer.merged": "into {survivor_id}",
    "crm.customer.absorbed_duplicate": "{duplicate_id}",
    "crm.customer.enrolled_in_campaign": "{campaign} via {channel}",
    "crm.customer.erased": "{reason}",
    "crm.lead.captured": "{name} via {channel}",
    "crm.lead.scored": "{score}",
    "crm.lead.assigned": "to {owner}",
    "crm.lead.activity_logged": "{kind}: {summary}",
    "crm.lead.disqualified": "{reason}",
    "crm.lead.converted": "to customer {customer_id}",
    "crm.lead.erased": "{reason}",
    "crm.opportunity.opened": "{title}, {amount[amount]} {amount[currency]}",
    "crm.opportunity.stage_changed": "{from_stage} → {stage}",
    "crm.opportunity.amount_changed": "{amount[amount]} {amount[currency]}",
    "crm.opportunity.expected_close_changed": "{expected_close}",
    "crm.opportunity.won": "{amount[amount]} {amount[currency]}, {contract_reference}",
    "crm.opportunity.lost": "{reason}",
    "crm.opportunity.reopened": "at {stage}",
    "crm.ticket.opened": "{subject} ({priority})",
    "crm.ticket.assigned": "to {agent}",
    "crm.ticket.escalated": "to level {level}: {reason}",
    "crm.ticket.priority_changed": "to {priority}",
    "crm.ticket.resolved": "{resolution}",
    "crm.ticket.rated": "CSAT {score}",
    "crm.ticket.sla_at_risk": "{measure} due {due}",
    "crm.ticket.sla_breached": "{measure} was due {due}",
}
SUMMARY_LENGTH = 200


def summarise(event: DomainEvent, payload: dict[str, Any]) -> str:
    """A one-line summary, e.g. "Customer tagged: vip"."""
    return summary_of(type(event).TYPE, payload)


def summary_of(event_type: str, payload: dict[str, Any]) -> str:
    """The summary of an event of this type (`crm.customer.tagged`) with this payload."""
    title, detail, derives = _template(event_type)
    if detail is None:
        return title[:SUMMARY_LENGTH]
    if derives:
        payload = {
            **payload,
            "changed": ", ".join(payload.get("changes", ())),
            "granted_or_withdrawn": "granted" if payload.get("granted") else "withdrawn",
        }
    return (title + detail.format_map(payload))[:SUMMARY_LENGTH]


@cache
def _template(event_type: str) -> tuple[str, str | None, bool]:
    """The summary's fixed start, its detail (if any), and whether the detail names a derived
    value; worked out once per type, as every event of the log is summarised in a rebuild."""
    aggregate, _, happened = event_type.removeprefix("crm.").partition(".")
    title = f"{aggregate.capitalize()} {happened.replace('_', ' ')}"
    detail = DETAILS.get(event_type)
    if detail is None:
        return title, None, False
    return title + ": ", detail, any(f"{{{name}" in detail for name in _DERIVED)


_DERIVED = ("changed", "granted_or_withdrawn")
