"""SalesFunnelRebuild: SalesFunnelProjection's statements applied to rows in memory (rebuilds)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from domain.lead import (
    LeadAssigned,
    LeadCaptured,
    LeadConverted,
    LeadDisqualified,
    LeadQualified,
    LeadReopened,
)
from domain.opportunity import (
    OpportunityAmountChanged,
    OpportunityEvent,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityStageChanged,
    OpportunityWon,
    Stage,
)
from projections.customer_regions import CustomerRegionsRebuild
from projections.readmodel import ReadModelView, handles
from projections.sales_funnel.projection import SalesFunnelProjection


class SalesFunnelRebuild(CustomerRegionsRebuild, rebuilds=SalesFunnelProjection):
    """Mirrors each handler of SalesFunnelProjection; `periods_of` finds a deal's stays."""

    def __init__(self, view: ReadModelView, columns: dict[str, tuple[str, ...]]) -> None:
        super().__init__(view, columns)
        self.periods_of: dict[UUID, list[tuple[UUID, int]]] = defaultdict(list)

    @handles(LeadCaptured)
    def lead_captured(self, event: LeadCaptured) -> None:
        self.tables["leads"].add_new(
            event.originator_id,
            lead_id=event.originator_id,
            channel=event.channel,
            campaign=event.campaign,
            region=event.region,
            status="open",
            captured_at=event.timestamp,
        )

    @handles(LeadAssigned)
    def lead_assigned(self, event: LeadAssigned) -> None:
        self.tables["leads"].set(event.originator_id, owner=event.owner)

    @handles(LeadQualified)
    def lead_qualified(self, event: LeadQualified) -> None:
        row = self.tables["leads"].set(event.originator_id, status="qualified")
        if row is not None and row["qualified_at"] is None:
            row["qualified_at"] = event.timestamp

    @handles(LeadDisqualified)
    def lead_disqualified(self, event: LeadDisqualified) -> None:
        self.tables["leads"].set(event.originator_id, status="disqualified")

    @handles(LeadReopened)
    def lead_reopened(self, event: LeadReopened) -> None:
        self.tables["leads"].set(event.originator_id, status="open")

    @handles(LeadConverted)
    def lead_converted(self, event: LeadConverted) -> None:
        lead = self.tables["leads"].set(
            event.originator_id,
            status="converted",
            converted_at=event.timestamp,
            customer_id=event.customer_id,
        )
        if lead is None:
            return
        if lead["opportunity_id"] is None:
            lead["opportunity_id"] = event.opportunity_id
        if event.opportunity_id is None:
            return
        deal = self.tables["opportunities"].get(event.opportunity_id)
        if deal is not None and deal["lead_id"] is None:
            deal["lead_id"] = lead["lead_id"]
            deal["channel"] = lead["channel"]
            deal["campaign"] = lead["campaign"]
            if deal["region"] is None:
                deal["region"] = lead["region"]

    @handles(OpportunityOpened)
    def opportunity_opened(self, event: OpportunityOpened) -> None:
        customer = self.tables["customers"].get(event.customer_id)
        leads = self.tables["leads"]
        lead = None if event.source_lead_id is None else leads.get(event.source_lead_id)
        region = None if customer is None else customer["region"]
        if region is None and lead is not None:
            region = lead["region"]
        self.add_deal(
            event.originator_id,
            opportunity_id=event.originator_id,
            title=event.title,
            customer_id=event.customer_id,
            lead_id=event.source_lead_id,
            owner=event.owner,
            region=region,
            channel=None if lead is None else lead["channel"],
            campaign=None if lead is None else lead["campaign"],
            stage="qualification",
            amount=event.amount.amount,
            currency=event.amount.currency,
            opened_at=event.timestamp,
            stage_entered_at=event.timestamp,
        )
        if lead is not None and lead["opportunity_id"] is None:
            lead["opportunity_id"] = event.originator_id
        self._start_period(event, "qualification")

    @handles(OpportunityStageChanged, OpportunityReopened)
    def stage_changed(self, event: OpportunityStageChanged | OpportunityReopened) -> None:
        self._enter(event, event.stage, closed_at=None)

    @handles(OpportunityWon)
    def won(self, event: OpportunityWon) -> None:
        self._enter(
            event,
            "won",
            closed_at=event.timestamp,
            amount=event.amount.amount,
            currency=event.amount.currency,
        )

    @handles(OpportunityLost)
    def lost(self, event: OpportunityLost) -> None:
        self._enter(event, "lost", closed_at=event.timestamp)

    @handles(OpportunityAmountChanged)
    def amount_changed(self, event: OpportunityAmountChanged) -> None:
        self.tables["opportunities"].set(
            event.originator_id, amount=event.amount.amount, currency=event.amount.currency
        )

    def _enter(self, event: OpportunityEvent, stage: Stage, **columns: Any) -> None:
        """The deal leaves its current stage and enters `stage` (a new period)."""
        self.tables["opportunities"].set(
            event.originator_id, stage=stage, stage_entered_at=event.timestamp, **columns
        )
        periods = self.tables["stage_periods"]
        for key in self.periods_of.get(event.originator_id, ()):
            period = periods.get(key)
            if period is not None and period["left_at"] is None:
                period["left_at"] = event.timestamp
        self._start_period(event, stage)

    def _start_period(self, event: OpportunityEvent | OpportunityOpened, stage: Stage) -> None:
        key = (event.originator_id, event.originator_version)
        added = self.tables["stage_periods"].add_new(
            key,
            opportunity_id=event.originator_id,
            entered_version=event.originator_version,
            stage=stage,
            entered_at=event.timestamp,
        )
        if added is not None:
            self.periods_of[event.originator_id].append(key)
