"""Opportunities: a deal moving through the sales pipeline until it is won or lost."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.shared import Aggregate, CreationEvent, DomainError, DomainEvent
from domain.values import Money, check_choice, optional_text, required_text

OpenStage = Literal["qualification", "needs_analysis", "proposal", "negotiation"]
Stage = Literal[OpenStage, "won", "lost"]
PIPELINE: tuple[OpenStage, ...] = get_args(OpenStage)
STAGES: tuple[Stage, ...] = (*PIPELINE, "won", "lost")
WINNABLE_STAGES: frozenset[Stage] = frozenset({"proposal", "negotiation"})
DEFAULT_STAGE_PROBABILITIES: Mapping[str, int] = MappingProxyType(
    {
        "qualification": 10,
        "needs_analysis": 25,
        "proposal": 50,
        "negotiation": 75,
        "won": 100,
        "lost": 0,
    }
)


class StageEntry(BaseModel):
    """When the opportunity entered a stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage
    entered_at: datetime


class OpportunityOpened(CreationEvent):
    """A deal with a customer entered the pipeline at `qualification`."""

    TYPE: ClassVar[str] = "crm.opportunity.opened"

    customer_id: UUID
    title: str
    amount: Money
    expected_close: date
    owner: str
    source_lead_id: UUID | None = None

    def create(self) -> Opportunity:
        return Opportunity.born(
            self,
            **self.model_dump(exclude=set(DomainEvent.model_fields)),
            stage="qualification",
            stage_entered_at=self.timestamp,
            stage_history=[StageEntry(stage="qualification", entered_at=self.timestamp)],
        )


class OpportunityEvent(DomainEvent):
    """Base of the events that change an existing opportunity."""

    def enter(self, aggregate: Opportunity, stage: Stage) -> None:
        aggregate.stage = stage
        aggregate.stage_entered_at = self.timestamp
        aggregate.stage_history.append(StageEntry(stage=stage, entered_at=self.timestamp))


class OpportunityStageChanged(OpportunityEvent):
    """The deal moved (forwards or back) to another open stage of the pipeline."""

    TYPE: ClassVar[str] = "crm.opportunity.stage_changed"

    from_stage: OpenStage
    stage: OpenStage

    def apply(self, aggregate: Opportunity) -> None:
        self.enter(aggregate, self.stage)


class OpportunityAmountChanged(OpportunityEvent):
    """The expected value of the deal changed (possibly to another currency)."""

    TYPE: ClassVar[str] = "crm.opportunity.amount_changed"

    amount: Money

    def apply(self, aggregate: Opportunity) -> None:
        aggregate.amount = self.amount


class OpportunityExpectedCloseChanged(OpportunityEvent):
    """The date the deal is expected to close moved."""

    TYPE: ClassVar[str] = "crm.opportunity.expected_close_changed"

    expected_close: date

    def apply(self, aggregate: Opportunity) -> None:
        aggregate.expected_close = self.expected_close


class OpportunityWon(OpportunityEvent):
    """The customer signed, for the final amount, under the contract reference."""

    TYPE: ClassVar[str] = "crm.opportunity.won"

    from_stage: OpenStage
    amount: Money
    contract_reference: str

    def apply(self, aggregate: Opportunity) -> None:
        aggregate.amount = self.amount
        aggregate.contract_reference = self.contract_reference
        self.enter(aggregate, "won")


class OpportunityLost(OpportunityEvent):
    """The deal fell through at `from_stage`, for a reason (maybe to a competitor)."""

    TYPE: ClassVar[str] = "crm.opportunity.lost"

    from_stage: OpenStage
    reason: str
    competitor: str | None = None

    def apply(self, aggregate: Opportunity) -> None:
        aggregate.lost_from_stage = self.from_stage
        aggregate.loss_reason = self.reason
        aggregate.competitor = self.competitor
        self.enter(aggregate, "lost")


class OpportunityReopened(OpportunityEvent):
    """A lost deal is back in the pipeline, at the stage it was lost from."""

    TYPE: ClassVar[str] = "crm.opportunity.reopened"

    stage: OpenStage

    def apply(self, aggregate: Opportunity) -> None:
        aggregate.lost_from_stage = aggregate.loss_reason = aggregate.competitor = None
        self.enter(aggregate, self.stage)


class Opportunity(Aggregate):
    """A deal in the pipeline; once won or lost only reopening (a lost one) changes it."""

    TYPE: ClassVar[str] = "crm.opportunity"

    customer_id: UUID
    title: str
    amount: Money
    expected_close: date
    owner: str
    source_lead_id: UUID | None
    stage: Stage
    stage_entered_at: datetime
    stage_history: list[StageEntry]
    contract_reference: str | None = None
    lost_from_stage: OpenStage | None = None
    loss_reason: str | None = None
    competitor: str | None = None

    @classmethod
    def open(
        cls,
        *,
        opportunity_id: UUID,
        customer_id: UUID,
        title: str,
        amount: Money,
        expected_close: date,
        owner: str,
        source_lead_id: UUID | None = None,
    ) -> Opportunity:
        return cls._start(
            OpportunityOpened,
            opportunity_id,
            customer_id=customer_id,
            title=required_text("title", title),
            amount=amount,
            expected_close=expected_close,
            owner=required_text("owner", owner),
            source_lead_id=source_lead_id,
        )

    @property
    def is_closed(self) -> bool:
        return self.stage in ("won", "lost")

    def probability(self, table: Mapping[str, int] = DEFAULT_STAGE_PROBABILITIES) -> int:
        """The chance (in percent) of winning, by stage, from `table` (the configured one)."""
        return table[self.stage]

    def move_to_stage(self, stage: OpenStage) -> None:
        check_not_closed(self)
        check_choice("stage", stage, PIPELINE)
        if stage != self.stage:
            self._trigger(OpportunityStageChanged, from_stage=self.stage, stage=stage)

    def change_amount(self, amount: Money) -> None:
        # The currency may change too (the customer asked to be quoted in another one): the
        # event carries the whole Money, and read models never add amounts across currencies.
        check_not_closed(self)
        if amount != self.amount:
            self._trigger(OpportunityAmountChanged, amount=amount)

    def change_expected_close(self, expected_close: date) -> None:
        check_not_closed(self)
        if expected_close != self.expected_close:
            self._trigger(OpportunityExpectedCloseChanged, expected_close=expected_close)

    def win(self, amount: Money, contract_reference: str) -> None:
        check_not_closed(self)
        check_ready_to_win(self)
        self._trigger(
            OpportunityWon,
            from_stage=self.stage,
            amount=amount,
            contract_reference=required_text("contract_reference", contract_reference),
        )

    def lose(self, reason: str, competitor: str | None = None) -> None:
        check_not_closed(self)
        self._trigger(
            OpportunityLost,
            from_stage=self.stage,
            reason=required_text("reason", reason),
            competitor=optional_text(competitor),
        )

    def reopen(self) -> None:
        check_lost(self)
        self._trigger(OpportunityReopened, stage=self.lost_from_stage)


def check_not_closed(opportunity: Opportunity) -> None:
    if opportunity.is_closed:
        raise OpportunityIsClosed(opportunity.id, opportunity.stage)


def check_ready_to_win(opportunity: Opportunity) -> None:
    if opportunity.stage not in WINNABLE_STAGES:
        raise OpportunityNotReadyToWin(opportunity.id, opportunity.stage)


def check_lost(opportunity: Opportunity) -> None:
    if opportunity.stage != "lost":
        raise OpportunityNotLost(opportunity.id, opportunity.stage)


class OpportunityError(DomainError):
    """A command broke one of an opportunity's rules."""

    def __init__(self, opportunity_id: UUID, detail: str, **context: Any) -> None:
        super().__init__(detail, opportunity_id=str(opportunity_id), **context)
        self.opportunity_id = opportunity_id


class OpportunityIsClosed(OpportunityError):
    """A won or lost opportunity accepts no change (a lost one can be reopened)."""

    def __init__(self, opportunity_id: UUID, stage: str) -> None:
        super().__init__(opportunity_id, f"Opportunity {opportunity_id} is {stage}", stage=stage)


class OpportunityNotReadyToWin(OpportunityError):
    """An opportunity is won only from `proposal` or `negotiation`."""

    def __init__(self, opportunity_id: UUID, stage: str) -> None:
        detail = f"Opportunity {opportunity_id} is at {stage}; it needs a proposal first"
        super().__init__(opportunity_id, detail, stage=stage)


class OpportunityNotLost(OpportunityError):
    """Only a lost opportunity can be reopened."""

    def __init__(self, opportunity_id: UUID, stage: str) -> None:
        detail = f"Opportunity {opportunity_id} is {stage}, not lost; it cannot be reopened"
        super().__init__(opportunity_id, detail, stage=stage)
