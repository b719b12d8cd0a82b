"""Pipeline forecast: open, weighted, committed and won amounts per expected-close month."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed

from domain.opportunity import (
    DEFAULT_STAGE_PROBABILITIES,
    STAGES,
    OpportunityAmountChanged,
    OpportunityExpectedCloseChanged,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityStageChanged,
    OpportunityWon,
)
from projections.customer_regions import CustomerRegions, CustomerRegionsRebuild
from projections.readmodel import ReadModelView, Row, handles
from projections.visibility import Visibility

COMMITTED_STAGE = "negotiation"


class PipelineForecastView(ReadModelView):
    """One row per opportunity; weighting happens at query time, so new odds need no rebuild."""

    name: ClassVar[str] = "pipeline_forecast"
    tables: ClassVar[dict[str, str]] = {
        "customers": "customer_id uuid PRIMARY KEY, region text NOT NULL",
        "opportunities": (
            "opportunity_id uuid PRIMARY KEY, customer_id uuid NOT NULL, owner text NOT NULL, "
            "region text, stage text NOT NULL, amount numeric NOT NULL, currency text NOT NULL, "
            "expected_close date NOT NULL, won_amount numeric"
        ),
    }
    indexes: ClassVar[dict[str, list[str]]] = {
        "opportunities": ["expected_close", "owner", "customer_id"],
    }

    def forecast(
        self,
        *,
        probabilities: Mapping[str, int] = DEFAULT_STAGE_PROBABILITIES,
        owner: str | None = None,
        region: str | None = None,
        from_month: date | None = None,
        to_month: date | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> list[Row]:
        """Per expected-close month, owner, region and currency: open, weighted, committed, won.

        `probabilities` (percent per stage) override the default table; weighted is
        amount x probability / 100 over open deals; committed is the open amount in negotiation.
        Months are given by any of their days; both ends are included. Lost deals are left out.
        `visible` keeps the deals a reader may see, by their owner and region.
        """
        self.wait_for(min_position)
        table = {**DEFAULT_STAGE_PROBABILITIES, **probabilities}
        conditions: list[Composed | SQL] = [SQL("o.stage <> 'lost'")]
        params: list[Any] = []
        for clause, value in (
            ("o.owner = %s", owner),
            ("o.region = %s", region),
            ("o.expected_close >= %s", from_month and month_start(from_month)),
            ("o.expected_close < %s", to_month and next_month(to_month)),
        ):
            if value is not None:
                conditions.append(SQL(clause))
                params.append(value)
        if visible is not None:
            where, values = visible.where(region="region", owner="owner")
            conditions.extend(SQL("({})").format(condition) for condition in where)
            params.extend(values)
        open_deal = "o.stage <> 'won'"
        return self.fetch(
            SQL(
                "SELECT date_trunc('month', o.expected_close)::date AS month, o.owner, o.region, "
                "o.currency, "
                "count(*) FILTER (WHERE " + open_deal + ") AS open_count, "
                "coalesce(sum(o.amount) FILTER (WHERE " + open_deal + "), 0) AS open_amount, "
                "coalesce(sum(o.amount * coalesce(p.probability, 0) / 100) "
                "FILTER (WHERE " + open_deal + "), 0) AS weighted_amount, "
                "coalesce(sum(o.amount) FILTER (WHERE o.stage = %s), 0) AS committed_amount, "
                "count(*) FILTER (WHERE o.stage = 'won') AS won_count, "
                "coalesce(sum(o.won_amount) FILTER (WHERE o.stage = 'won'), 0) AS won_amount "
                "FROM {deals} o "
                "LEFT JOIN unnest(%s::text[], %s::int[]) AS p(stage, probability) "
                "ON p.stage = o.stage "
                "WHERE {conditions} "
                "GROUP BY 1, o.owner, o.region, o.currency "
                "ORDER BY 1, o.owner, o.region NULLS FIRST, o.currency"
            ).format(deals=self.reader("opportunities"), conditions=SQL(" AND ").join(conditions)),
            [
                COMMITTED_STAGE,
                list(STAGES),
                [table.get(stage, 0) for stage in STAGES],
                *params,
            ],
        )


def month_start(day: date) -> date:
    """The first day of the month `day` is in."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after the one `day` is in."""
    return (month_start(day) + timedelta(days=32)).replace(day=1)


class PipelineForecastProjection(CustomerRegions):
    """Fills `pipeline_forecast` from opportunity events (and customers, for the region)."""

    name = "pipeline_forecast"

    @handles(OpportunityOpened)
    def opened(self, curs: Cursor[DictRow], event: OpportunityOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {deals} (opportunity_id, customer_id, owner, region, stage, amount, "
                "currency, expected_close) "
                "SELECT %(id)s, %(customer)s, %(owner)s, "
                "(SELECT region FROM {customers} WHERE customer_id = %(customer)s), "
                "'qualification', %(amount)s, %(currency)s, %(close)s "
                "ON CONFLICT (opportunity_id) DO NOTHING"
            ).format(
                deals=self.view.table("opportunities"), customers=self.view.table("customers")
            ),
            {
                "id": event.originator_id,
                "customer": event.customer_id,
                "owner": event.owner,
                "amount": event.amount.amount,
                "currency": event.amount.currency,
                "close": event.expected_close,
            },
        )

    @handles(OpportunityStageChanged, OpportunityReopened)
    def stage_changed(
        self, curs: Cursor[DictRow], event: OpportunityStageChanged | OpportunityReopened
    ) -> None:
        self._set(curs, event, stage=event.stage)

    @handles(OpportunityAmountChanged)
    def amount_changed(self, curs: Cursor[DictRow], event: OpportunityAmountChanged) -> None:
        self._set(curs, event, amount=event.amount.amount, currency=event.amount.currency)

    @handles(OpportunityExpectedCloseChanged)
    def expected_close_changed(
        self, curs: Cursor[DictRow], event: OpportunityExpectedCloseChanged
    ) -> None:
        self._set(curs, event, expected_close=event.expected_close)

    @handles(OpportunityWon)
    def won(self, curs: Cursor[DictRow], event: OpportunityWon) -> None:
        money = event.amount
        self._set(
            curs,
            event,
            stage="won",
            amount=money.amount,
            currency=money.currency,
            won_amount=money.amount,
        )

    @handles(OpportunityLost)
    def lost(self, curs: Cursor[DictRow], event: OpportunityLost) -> None:
        self._set(curs, event, stage="lost")

    def _set(self, curs: Cursor[DictRow], event: Any, **columns: Any) -> None:
        assignments = SQL(", ").join(SQL(f"{column} = %s") for column in columns)
        curs.execute(
            SQL("UPDATE {} SET {} WHERE opportunity_id = %s").format(
                self.view.table("opportunities"), assignments
            ),
            (*columns.values(), event.originator_id),
        )


class PipelineForecastRebuild(CustomerRegionsRebuild, rebuilds=PipelineForecastProjection):
    """PipelineForecastProjection's statements, applied to rows in memory (for rebuilds)."""

    @handles(OpportunityOpened)
    def opened(self, event: OpportunityOpened) -> None:
        customer = self.tables["customers"].get(event.customer_id)
        self.add_deal(
            event.originator_id,
            opportunity_id=event.originator_id,
            customer_id=event.customer_id,
            owner=event.owner,
            region=None if customer is None else customer["region"],
            stage="qualification",
            amount=event.amount.amount,
            currency=event.amount.currency,
            expected_close=event.expected_close,
        )

    @handles(OpportunityStageChanged, OpportunityReopened)
    def stage_changed(self, event: OpportunityStageChanged | OpportunityReopened) -> None:
        self._set(event, stage=event.stage)

    @handles(OpportunityAmountChanged)
    def amount_changed(self, event: OpportunityAmountChanged) -> None:
        self._set(event, amount=event.amount.amount, currency=event.amount.currency)

    @handles(OpportunityExpectedCloseChanged)
    def expected_close_changed(self, event: OpportunityExpectedCloseChanged) -> None:
        self._set(event, expected_close=event.expected_close)

    @handles(OpportunityWon)
    def won(self, event: OpportunityWon) -> None:
        money = event.amount
        self._set(
            event,
            stage="won",
            amount=money.amount,
            currency=money.currency,
            won_amount=money.amount,
        )

    @handles(OpportunityLost)
    def lost(self, event: OpportunityLost) -> None:
        self._set(event, stage="lost")

    def _set(self, event: Any, **columns: Any) -> None:
        self.tables["opportunities"].set(event.originator_id, **columns)
