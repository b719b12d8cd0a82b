"""SalesFunnelProjection: fills the sales funnel's tables from customer, lead and deal events."""

from __future__ import annotations

from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

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
from projections.customer_regions import CustomerRegions
from projections.readmodel import handles


class SalesFunnelProjection(CustomerRegions):
    """Fills `sales_funnel` from customer, lead and opportunity events."""

    name = "sales_funnel"

    @handles(LeadCaptured)
    def lead_captured(self, curs: Cursor[DictRow], event: LeadCaptured) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (lead_id, channel, campaign, region, status, captured_at) "
                "VALUES (%s, %s, %s, %s, 'open', %s) ON CONFLICT (lead_id) DO NOTHING"
            ).format(self.view.table("leads")),
            (event.originator_id, event.channel, event.campaign, event.region, event.timestamp),
        )

    @handles(LeadAssigned)
    def lead_assigned(self, curs: Cursor[DictRow], event: LeadAssigned) -> None:
        self._set_lead(curs, event, "owner = %s", event.owner)

    @handles(LeadQualified)
    def lead_qualified(self, curs: Cursor[DictRow], event: LeadQualified) -> None:
        # The funnel counts leads that ever reached `qualified`, so the first time is kept.
        self._set_lead(
            curs,
            event,
            "status = 'qualified', qualified_at = coalesce(qualified_at, %s)",
            event.timestamp,
        )

    @handles(LeadDisqualified)
    def lead_disqualified(self, curs: Cursor[DictRow], event: LeadDisqualified) -> None:
        self._set_lead(curs, event, "status = 'disqualified'")

    @handles(LeadReopened)
    def lead_reopened(self, curs: Cursor[DictRow], event: LeadReopened) -> None:
        self._set_lead(curs, event, "status = 'open'")

    @handles(LeadConverted)
    def lead_converted(self, curs: Cursor[DictRow], event: LeadConverted) -> None:
        self._set_lead(
            curs,
            event,
            "status = 'converted', converted_at = %s, customer_id = %s, "
            "opportunity_id = coalesce(opportunity_id, %s)",
            event.timestamp,
            event.customer_id,
            event.opportunity_id,
        )
        if event.opportunity_id is not None:
            # A deal opened without a source lead still came from the lead converted into it.
            curs.execute(
                SQL(
                    "UPDATE {deals} o SET lead_id = l.lead_id, channel = l.channel, "
                    "campaign = l.campaign, region = coalesce(o.region, l.region) "
                    "FROM {leads} l WHERE l.lead_id = %s AND o.opportunity_id = %s "
                    "AND o.lead_id IS NULL"
                ).format(deals=self.view.table("opportunities"), leads=self.view.table("leads")),
                (event.originator_id, event.opportunity_id),
            )

    @handles(OpportunityOpened)
    def opportunity_opened(self, curs: Cursor[DictRow], event: OpportunityOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {deals} (opportunity_id, title, customer_id, lead_id, owner, region, "
                "channel, campaign, stage, amount, currency, opened_at, stage_entered_at) "
                "SELECT %(id)s, %(title)s, %(customer)s, %(lead)s, %(owner)s, "
                "coalesce(c.region, l.region), l.channel, l.campaign, 'qualification', "
                "%(amount)s, %(currency)s, %(at)s, %(at)s "
                "FROM (SELECT) AS one "
                "LEFT JOIN {customers} c ON c.customer_id = %(customer)s "
                "LEFT JOIN {leads} l ON l.lead_id = %(lead)s "
                "ON CONFLICT (opportunity_id) DO NOTHING"
            ).format(
                deals=self.view.table("opportunities"),
                customers=self.view.table("customers"),
                leads=self.view.table("leads"),
            ),
            {
                "id": event.originator_id,
                "title": event.title,
                "customer": event.customer_id,
                "lead": event.source_lead_id,
                "owner": event.owner,
                "amount": event.amount.amount,
                "currency": event.amount.currency,
                "at": event.timestamp,
            },
        )
        if event.source_lead_id is not None:
            curs.execute(
                SQL(
                    "UPDATE {} SET opportunity_id = coalesce(opportunity_id, %s) WHERE lead_id = %s"
                ).format(self.view.table("leads")),
                (event.originator_id, event.source_lead_id),
            )
        self._start_period(curs, event, "qualification")

    @handles(OpportunityStageChanged, OpportunityReopened)
    def stage_changed(
        self, curs: Cursor[DictRow], event: OpportunityStageChanged | OpportunityReopened
    ) -> None:
        self._enter(curs, event, event.stage, "closed_at = NULL")

    @handles(OpportunityWon)
    def won(self, curs: Cursor[DictRow], event: OpportunityWon) -> None:
        self._enter(
            curs,
            event,
            "won",
            "closed_at = %s, amount = %s, currency = %s",
            event.timestamp,
            event.amount.amount,
            event.amount.currency,
        )

    @handles(OpportunityLost)
    def lost(self, curs: Cursor[DictRow], event: OpportunityLost) -> None:
        self._enter(curs, event, "lost", "closed_at = %s", event.timestamp)

    @handles(OpportunityAmountChanged)
    def amount_changed(self, curs: Cursor[DictRow], event: OpportunityAmountChanged) -> None:
        self._set_deal(
            curs, event, "amount = %s, currency = %s", event.amount.amount, event.amount.currency
        )

    def _enter(
        self,
        curs: Cursor[DictRow],
        event: OpportunityEvent,
        stage: Stage,
        assignments: str,
        *values: Any,
    ) -> None:
        """The deal leaves its current stage and enters `stage` (a new period)."""
        self._set_deal(
            curs,
            event,
            f"stage = %s, stage_entered_at = %s, {assignments}",
            stage,
            event.timestamp,
            *values,
        )
        curs.execute(
            SQL("UPDATE {} SET left_at = %s WHERE opportunity_id = %s AND left_at IS NULL").format(
                self.view.table("stage_periods")
            ),
            (event.timestamp, event.originator_id),
        )
        self._start_period(curs, event, stage)

    def _start_period(
        self, curs: Cursor[DictRow], event: OpportunityEvent | OpportunityOpened, stage: Stage
    ) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (opportunity_id, entered_version, stage, entered_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(self.view.table("stage_periods")),
            (event.originator_id, event.originator_version, stage, event.timestamp),
        )

    def _set_lead(self, curs: Cursor[DictRow], event: Any, assignments: str, *values: Any) -> None:
        curs.execute(
            SQL("UPDATE {} SET " + assignments + " WHERE lead_id = %s").format(
                self.view.table("leads")
            ),
            (*values, event.originator_id),
        )

    def _set_deal(self, curs: Cursor[DictRow], event: Any, assignments: str, *values: Any) -> None:
        curs.execute(
            SQL("UPDATE {} SET " + assignments + " WHERE opportunity_id = %s").format(
                self.view.table("opportunities")
            ),
            (*values, event.originator_id),
        )
