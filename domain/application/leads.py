"""Lead use cases: capture, score, assign, work, qualify, request conversion and convert."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from uuid import UUID, uuid4

from domain.application.base import UseCases
from domain.application.commands import CommandResult
from domain.lead import ActivityKind, Channel, Lead
from domain.opportunity import Opportunity
from domain.shared import InvalidValue

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class LeadUseCases(UseCases):
    """Everything a lead goes through before it becomes a customer."""

    def capture_lead(
        self,
        *,
        channel: Channel,
        name: str,
        region: str,
        email: str | None = None,
        phone: str | None = None,
        company: str | None = None,
        campaign: str | None = None,
        interest: str | None = None,
        utm: Mapping[str, str | None] | None = None,
        lead_id: UUID | None = None,
    ) -> CommandResult:
        """Capture a lead from a channel; it needs an email or a phone."""
        lead_id = lead_id or uuid4()
        utm_fields = {f"utm_{key}": value for key, value in (utm or {}).items()}
        unknown = set(utm_fields) - set(UTM_FIELDS)
        if unknown:
            raise InvalidValue("utm", sorted(unknown), f"known keys: {sorted(UTM_FIELDS)}")
        return self.commands.create(
            lambda: [
                Lead.capture(
                    lead_id=lead_id,
                    channel=channel,
                    name=name,
                    region=region,
                    email=email,
                    phone=phone,
                    phone_region=self.config.phone_region,
                    company=company,
                    campaign=campaign,
                    interest=interest,
                    **utm_fields,
                )
            ]
        )

    def score_lead(
        self,
        lead_id: UUID,
        score: int,
        reasons: Sequence[str] = (),
        *,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._lead(lead_id, expected_version, lambda lead: lead.score(score, reasons))

    def assign_lead(
        self,
        lead_id: UUID,
        owner: str,
        *,
        rule_id: str | None = None,
        explanation: str = "",
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._lead(
            lead_id,
            expected_version,
            lambda lead: lead.assign(owner, rule_id, explanation or "assigned by hand"),
        )

    def log_lead_activity(
        self,
        lead_id: UUID,
        *,
        kind: ActivityKind,
        summary: str,
        occurred_at: datetime | None = None,
        activity_id: UUID | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        new_id = activity_id or uuid4()
        return self._lead(
            lead_id,
            expected_version,
            lambda lead: lead.log_activity(new_id, kind, summary, occurred_at),
        )

    def qualify_lead(self, lead_id: UUID, *, expected_version: int | None = None) -> CommandResult:
        return self._lead(lead_id, expected_version, lambda lead: lead.qualify())

    def disqualify_lead(
        self, lead_id: UUID, reason: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._lead(lead_id, expected_version, lambda lead: lead.disqualify(reason))

    def reopen_lead(self, lead_id: UUID, *, expected_version: int | None = None) -> CommandResult:
        return self._lead(lead_id, expected_version, lambda lead: lead.reopen())

    def request_lead_conversion(
        self, lead_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        """Ask for a qualified lead to be converted; the lead conversion saga does it."""
        return self._lead(lead_id, expected_version, lambda lead: lead.request_conversion())

    def convert_lead(
        self,
        lead_id: UUID,
        customer_id: UUID,
        opportunity_id: UUID | None = None,
        *,
        expected_version: int | None = None,
    ) -> CommandResult:
        """Record that a qualified lead became this customer (and opportunity)."""
        self._live_customer(customer_id)
        if opportunity_id is not None:
            self.commands.load(Opportunity, opportunity_id)
        return self._lead(
            lead_id, expected_version, lambda lead: lead.convert(customer_id, opportunity_id)
        )

    def erase_lead(
        self, lead_id: UUID, *, reason: str, expected_version: int | None = None
    ) -> CommandResult:
        """Erase the lead's personal data; recording the event destroys the lead's key."""
        return self._lead(lead_id, expected_version, lambda lead: lead.erase(reason))

    def _lead(
        self, lead_id: UUID, expected_version: int | None, command: Callable[[Lead], None]
    ) -> CommandResult:
        return self.commands.change(Lead, lead_id, command, expected_version)
