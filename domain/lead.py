"""Leads: captured from a channel, scored, assigned, worked, qualified and converted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID

from domain.personal import REDACTED, PersonalData
from domain.shared import Aggregate, CreationEvent, DomainError, DomainEvent, now
from domain.values import (
    DEFAULT_PHONE_REGION,
    check_aware,
    check_choice,
    optional_email,
    optional_phone,
    optional_text,
    required_text,
)

Channel = Literal["web_form", "landing_page", "event", "referral", "ads", "phone", "import"]
ActivityKind = Literal["call", "email", "message", "meeting", "visit", "note"]
LeadStatus = Literal["open", "qualified", "disqualified", "converted"]
MIN_SCORE, MAX_SCORE = 0, 100


class LeadCaptured(CreationEvent):
    """A prospect reached us through a channel (its fields become the lead's initial state)."""

    TYPE: ClassVar[str] = "crm.lead.captured"

    channel: Channel
    campaign: str | None = None
    name: PersonalData[str]
    company: str | None = None
    email: PersonalData[str | None] = None
    phone: PersonalData[str | None] = None
    region: str
    interest: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None

    def create(self) -> Lead:
        return Lead.born(self, **self.model_dump(exclude=set(DomainEvent.model_fields)))


class LeadEvent(DomainEvent):
    """Base of the events that change an existing lead."""


class LeadScored(LeadEvent):
    """The lead was given a score from 0 to 100, with the reasons behind it."""

    TYPE: ClassVar[str] = "crm.lead.scored"

    score: int
    reasons: tuple[str, ...] = ()

    def apply(self, aggregate: Lead) -> None:
        aggregate.current_score = self.score
        aggregate.score_reasons = list(self.reasons)


class LeadAssigned(LeadEvent):
    """The lead was given to an owner, by an assignment rule (or by hand when `rule_id` is None)."""

    TYPE: ClassVar[str] = "crm.lead.assigned"

    owner: str
    rule_id: str | None = None
    explanation: str

    def apply(self, aggregate: Lead) -> None:
        aggregate.owner = self.owner


class LeadActivityLogged(LeadEvent):
    """Someone called, wrote to or met the lead."""

    TYPE: ClassVar[str] = "crm.lead.activity_logged"

    activity_id: UUID
    kind: ActivityKind
    summary: PersonalData[str]
    occurred_at: datetime

    def apply(self, aggregate: Lead) -> None:
        aggregate.activity_ids.append(self.activity_id)
        if aggregate.last_activity_at is None or self.occurred_at > aggregate.last_activity_at:
            aggregate.last_activity_at = self.occurred_at


class LeadQualified(LeadEvent):
    """The lead is a real sales opportunity and may be converted."""

    TYPE: ClassVar[str] = "crm.lead.qualified"

    def apply(self, aggregate: Lead) -> None:
        aggregate.status = "qualified"


class LeadDisqualified(LeadEvent):
    """The lead is not worth pursuing, for the given reason."""

    TYPE: ClassVar[str] = "crm.lead.disqualified"

    reason: PersonalData[str]

    def apply(self, aggregate: Lead) -> None:
        aggregate.status = "disqualified"
        aggregate.disqualification_reason = self.reason
        aggregate.conversion_requested = False


class LeadReopened(LeadEvent):
    """A disqualified lead is open to work again."""

    TYPE: ClassVar[str] = "crm.lead.reopened"

    def apply(self, aggregate: Lead) -> None:
        aggregate.status = "open"
        aggregate.disqualification_reason = None


class LeadConversionRequested(LeadEvent):
    """Someone asked for the qualified lead to be converted (the conversion saga does it)."""

    TYPE: ClassVar[str] = "crm.lead.conversion_requested"

    def apply(self, aggregate: Lead) -> None:
        aggregate.conversion_requested = True


class LeadConverted(LeadEvent):
    """The qualified lead became a customer (and maybe an opportunity); it is final."""

    TYPE: ClassVar[str] = "crm.lead.converted"

    customer_id: UUID
    opportunity_id: UUID | None = None

    def apply(self, aggregate: Lead) -> None:
        aggregate.status = "converted"
        aggregate.converted_customer_id = self.customer_id
        aggregate.converted_opportunity_id = self.opportunity_id


class LeadErased(LeadEvent):
    """The lead's personal data was erased (GDPR/PIPL): its key was destroyed with this event."""

    TYPE: ClassVar[str] = "crm.lead.erased"

    reason: str

    def erased_subjects(self) -> tuple[UUID, ...]:
        return (self.originator_id,)

    def apply(self, aggregate: Lead) -> None:
        # The same state a replay reads once the key is gone, so live and replayed agree.
        aggregate.name = REDACTED
        aggregate.email = None if aggregate.email is None else REDACTED
        aggregate.phone = None if aggregate.phone is None else REDACTED
        if aggregate.disqualification_reason is not None:
            aggregate.disqualification_reason = REDACTED
        aggregate.erased_at = self.timestamp


class Lead(Aggregate):
    """A prospect being worked towards conversion; once converted it never changes again."""

    TYPE: ClassVar[str] = "crm.lead"

    channel: Channel
    campaign: str | None
    name: str
    company: str | None
    email: str | None
    phone: str | None
    region: str
    interest: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    status: LeadStatus = "open"
    current_score: int | None = None
    score_reasons: list[str] = []
    owner: str | None = None
    activity_ids: list[UUID] = []
    last_activity_at: datetime | None = None
    disqualification_reason: str | None = None
    conversion_requested: bool = False
    converted_customer_id: UUID | None = None
    converted_opportunity_id: UUID | None = None
    erased_at: datetime | None = None

    @classmethod
    def capture(
        cls,
        *,
        lead_id: UUID,
        channel: Channel,
        name: str,
        region: str,
        email: str | None = None,
        phone: str | None = None,
        phone_region: str = DEFAULT_PHONE_REGION,
        company: str | None = None,
        campaign: str | None = None,
        interest: str | None = None,
        utm_source: str | None = None,
        utm_medium: str | None = None,
        utm_campaign: str | None = None,
        utm_term: str | None = None,
        utm_content: str | None = None,
    ) -> Lead:
        check_choice("channel", channel, get_args(Channel))
        # Blank form fields mean "not given", so they never fail validation.
        email, phone = optional_email(email), optional_phone(phone, phone_region)
        check_has_contact_details(lead_id, email, phone)
        return cls._start(
            LeadCaptured,
            lead_id,
            channel=channel,
            name=required_text("name", name),
            region=required_text("region", region),
            email=email,
            phone=phone,
            company=optional_text(company),
            campaign=optional_text(campaign),
            interest=optional_text(interest),
            utm_source=optional_text(utm_source),
            utm_medium=optional_text(utm_medium),
            utm_campaign=optional_text(utm_campaign),
            utm_term=optional_text(utm_term),
            utm_content=optional_text(utm_content),
        )

    def score(self, score: int, reasons: Sequence[str] = ()) -> None:
        check_not_converted(self)
        check_score_in_range(self, score)
        if score != self.current_score or list(reasons) != self.score_reasons:
            self._trigger(LeadScored, score=score, reasons=tuple(reasons))

    def assign(self, owner: str, rule_id: str | None, explanation: str) -> None:
        check_not_converted(self)
        owner = required_text("owner", owner)
        if owner != self.owner:
            self._trigger(LeadAssigned, owner=owner, rule_id=rule_id, explanation=explanation)

    def log_activity(
        self,
        activity_id: UUID,
        kind: ActivityKind,
        summary: str,
        occurred_at: datetime | None = None,
    ) -> None:
        check_not_converted(self)
        check_not_erased(self)
        check_choice("kind", kind, get_args(ActivityKind))
        summary = required_text("summary", summary)
        check_aware("occurred_at", occurred_at)
        if activity_id in self.activity_ids:
            return  # the same activity logged again (a retried request)
        self._trigger(
            LeadActivityLogged,
            activity_id=activity_id,
            kind=kind,
            summary=summary,
            occurred_at=occurred_at or now(),
        )

    def qualify(self) -> None:
        check_not_converted(self)
        check_not_disqualified(self)
        if self.status != "qualified":
            self._trigger(LeadQualified)

    def disqualify(self, reason: str) -> None:
        check_not_converted(self)
        check_not_erased(self)
        reason = required_text("reason", reason)
        if self.status != "disqualified":
            self._trigger(LeadDisqualified, reason=reason)

    def reopen(self) -> None:
        check_not_converted(self)
        if self.status == "disqualified":
            self._trigger(LeadReopened)

    def request_conversion(self) -> None:
        check_not_converted(self)
        check_qualified(self)
        if not self.conversion_requested:
            self._trigger(LeadConversionRequested)

    def convert(self, customer_id: UUID, opportunity_id: UUID | None = None) -> None:
        check_not_converted(self)
        check_qualified(self)
        self._trigger(LeadConverted, customer_id=customer_id, opportunity_id=opportunity_id)

    def erase(self, reason: str) -> None:
        """Erase the lead's personal data for good, whatever its status; again is a no-op."""
        reason = required_text("reason", reason)
        if self.erased_at is None:
            self._trigger(LeadErased, reason=reason)


def check_has_contact_details(lead_id: UUID, email: str | None, phone: str | None) -> None:
    if email is None and phone is None:
        raise LeadNeedsContactDetails(lead_id)


def check_score_in_range(lead: Lead, score: int) -> None:
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise LeadScoreOutOfRange(lead.id, score)


def check_not_converted(lead: Lead) -> None:
    if lead.status == "converted":
        raise LeadAlreadyConverted(lead.id, lead.converted_customer_id)


def check_not_erased(lead: Lead) -> None:
    if lead.erased_at is not None:
        raise LeadIsErased(lead.id)


def check_not_disqualified(lead: Lead) -> None:
    if lead.status == "disqualified":
        raise LeadIsDisqualified(lead.id)


def check_qualified(lead: Lead) -> None:
    if lead.status != "qualified":
        raise LeadNotQualified(lead.id, lead.status)


class LeadError(DomainError):
    """A command broke one of a lead's rules."""

    def __init__(self, lead_id: UUID, detail: str, **context: Any) -> None:
        super().__init__(detail, lead_id=str(lead_id), **context)
        self.lead_id = lead_id


class LeadNeedsContactDetails(LeadError):
    """A lead needs an email address or a phone number to be worked."""

    def __init__(self, lead_id: UUID) -> None:
        super().__init__(lead_id, f"Lead {lead_id} needs an email or a phone")


class LeadScoreOutOfRange(LeadError):
    """Lead scores run from 0 to 100."""

    def __init__(self, lead_id: UUID, score: int) -> None:
        detail = f"Score {score} for lead {lead_id} is not within {MIN_SCORE}..{MAX_SCORE}"
        super().__init__(lead_id, detail, score=score)


class LeadNotQualified(LeadError):
    """Only a qualified lead can be converted."""

    def __init__(self, lead_id: UUID, status: str) -> None:
        super().__init__(lead_id, f"Lead {lead_id} is {status}, not qualified", status=status)


class LeadIsDisqualified(LeadError):
    """A disqualified lead must be reopened before it can be qualified."""

    def __init__(self, lead_id: UUID) -> None:
        super().__init__(lead_id, f"Lead {lead_id} is disqualified")


class LeadAlreadyConverted(LeadError):
    """A converted lead is final: no command changes it any more."""

    def __init__(self, lead_id: UUID, customer_id: UUID | None) -> None:
        detail = f"Lead {lead_id} was converted to customer {customer_id}"
        super().__init__(lead_id, detail, customer_id=str(customer_id))
        self.customer_id = customer_id


class LeadIsErased(LeadError):
    """The lead's personal data was erased; no new personal data is recorded about them."""

    def __init__(self, lead_id: UUID) -> None:
        super().__init__(lead_id, f"Lead {lead_id}'s personal data was erased")
