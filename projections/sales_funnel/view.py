"""The sales funnel's tables and its queries: stages, conversion, days in stage, stalled deals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar
from uuid import UUID

from psycopg.sql import SQL, Composed, Identifier

from domain.opportunity import PIPELINE, STAGES
from projections.pagination import check_limit, decode_cursor, page_of
from projections.readmodel import ReadModelView, Row
from projections.sales_funnel.period import Period
from projections.visibility import Visibility

# Days a deal may sit in a stage before it counts as stalled (callers pass their own).
DEFAULT_STALL_THRESHOLDS: Mapping[str, int] = MappingProxyType(
    {"qualification": 14, "needs_analysis": 21, "proposal": 30, "negotiation": 30}
)
SECONDS_PER_DAY = 86400


class SalesFunnelView(ReadModelView):
    """Leads and opportunities with the attributes they are sliced by, and each deal's stages."""

    name: ClassVar[str] = "sales_funnel"
    tables: ClassVar[dict[str, str]] = {
        "customers": "customer_id uuid PRIMARY KEY, region text NOT NULL",
        "leads": (
            "lead_id uuid PRIMARY KEY, channel text NOT NULL, campaign text, "
            "region text NOT NULL, owner text, status text NOT NULL, "
            "captured_at timestamptz NOT NULL, qualified_at timestamptz, "
            "converted_at timestamptz, customer_id uuid, opportunity_id uuid"
        ),
        # channel/campaign come from the lead the deal came from; region from its customer.
        "opportunities": (
            "opportunity_id uuid PRIMARY KEY, title text NOT NULL, customer_id uuid NOT NULL, "
            "lead_id uuid, owner text NOT NULL, region text, channel text, campaign text, "
            "stage text NOT NULL, amount numeric NOT NULL, currency text NOT NULL, "
            "opened_at timestamptz NOT NULL, stage_entered_at timestamptz NOT NULL, "
            "closed_at timestamptz"
        ),
        # One row per stay in a stage: reopenings and moves back start new periods.
        "stage_periods": (
            "opportunity_id uuid NOT NULL, entered_version int NOT NULL, stage text NOT NULL, "
            "entered_at timestamptz NOT NULL, left_at timestamptz, "
            "PRIMARY KEY (opportunity_id, entered_version)"
        ),
    }
    indexes: ClassVar[dict[str, list[str]]] = {
        "leads": ["captured_at", "owner"],
        "opportunities": ["opened_at", "owner", "customer_id", "stage, stage_entered_at"],
    }

    def stages(
        self,
        *,
        period: Period | None = None,
        owner: str | None = None,
        region: str | None = None,
        channel: str | None = None,
        campaign: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> list[Row]:
        """Opportunities per current stage and currency: (stage, currency, count, amount)."""
        self.wait_for(min_position)
        conditions, params = _slice("opened_at", period, owner, region, channel, campaign)
        _restrict(conditions, params, visible)
        return self.fetch(
            SQL(
                "SELECT stage, currency, count(*) AS count, sum(amount) AS amount FROM {} {} "
                "GROUP BY stage, currency ORDER BY array_position(%s, stage), currency"
            ).format(self.reader("opportunities"), _where(conditions)),
            [*params, list(STAGES)],
        )

    def conversion(
        self,
        *,
        period: Period | None = None,
        owner: str | None = None,
        region: str | None = None,
        channel: str | None = None,
        campaign: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> dict[str, int | float | None]:
        """Counts at each step from lead to won, and the rate of each step (None when 0/0).

        Leads are counted by capture time, opportunities by open time, each in the slice.
        """
        self.wait_for(min_position)
        conditions, params = _slice("captured_at", period, owner, region, channel, campaign)
        _restrict(conditions, params, visible)
        leads = self.fetch(
            SQL(
                "SELECT count(*) AS leads, count(qualified_at) AS qualified, "
                "count(converted_at) AS converted, count(*) FILTER (WHERE converted_at IS NOT "
                "NULL AND opportunity_id IS NOT NULL) AS converted_with_opportunity FROM {} {}"
            ).format(self.reader("leads"), _where(conditions)),
            params,
        )[0]
        conditions, params = _slice("opened_at", period, owner, region, channel, campaign)
        _restrict(conditions, params, visible)
        deals = self.fetch(
            SQL(
                "SELECT count(*) AS opportunities, count(*) FILTER (WHERE stage = 'won') AS won, "
                "count(*) FILTER (WHERE stage = 'lost') AS lost FROM {} {}"
            ).format(self.reader("opportunities"), _where(conditions)),
            params,
        )[0]
        counts: dict[str, int] = {**leads, **deals}
        return {
            **counts,
            "lead_to_qualified": _rate(counts["qualified"], counts["leads"]),
            "qualified_to_converted": _rate(counts["converted"], counts["qualified"]),
            "converted_to_opportunity": _rate(
                counts["converted_with_opportunity"], counts["converted"]
            ),
            "opportunity_to_won": _rate(counts["won"], counts["opportunities"]),
            "win_rate": _rate(counts["won"], counts["won"] + counts["lost"]),
        }

    def average_days_in_stage(
        self,
        *,
        now: datetime | None = None,
        period: Period | None = None,
        owner: str | None = None,
        region: str | None = None,
        channel: str | None = None,
        campaign: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> list[Row]:
        """(stage, periods, average_days) per open stage, in pipeline order.

        Only finished stays count, unless `now` is given: then current stays count up to now.
        """
        self.wait_for(min_position)
        conditions, params = _slice("opened_at", period, owner, region, channel, campaign, "o")
        _restrict(conditions, params, visible)
        conditions.append(SQL("p.stage = ANY(%s)").format())
        params.append(list(PIPELINE))
        if now is None:
            conditions.append(SQL("p.left_at IS NOT NULL").format())
        return self.fetch(
            SQL(
                "SELECT p.stage, count(*) AS periods, "
                "avg(extract(epoch FROM coalesce(p.left_at, %s) - p.entered_at))::float8 "
                "/ {day} AS average_days "
                "FROM {periods} p JOIN {deals} o USING (opportunity_id) {where} "
                "GROUP BY p.stage ORDER BY array_position(%s, p.stage)"
            ).format(
                day=SQL(str(SECONDS_PER_DAY)),
                periods=self.reader("stage_periods"),
                deals=self.reader("opportunities"),
                where=_where(conditions),
            ),
            [now, *params, list(PIPELINE)],
        )

    def stalled_deals(
        self,
        now: datetime,
        *,
        thresholds: Mapping[str, int] = DEFAULT_STALL_THRESHOLDS,
        owner: str | None = None,
        region: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> tuple[list[Row], str | None]:
        """Open deals longer in their stage than its threshold (days), longest overdue first.

        `thresholds` override the defaults per stage. Rows add `threshold_days`, `days_in_stage`
        and `stalled_since` (when the threshold passed), the key the opaque cursor pages by.
        """
        check_limit(limit)
        self.wait_for(min_position)
        days = {**DEFAULT_STALL_THRESHOLDS, **thresholds}
        stages = [stage for stage in PIPELINE if stage in days]
        conditions, params = _slice("opened_at", None, owner, region, None, None, "o")
        _restrict(conditions, params, visible)
        conditions.append(SQL("{} < %s").format(SQL(STALLED_SINCE)))
        params.append(now)
        if cursor is not None:
            conditions.append(SQL("({}, o.opportunity_id) > (%s, %s)").format(SQL(STALLED_SINCE)))
            params.extend(decode_cursor(cursor, STALLED_KEY_PARSERS))
        rows = self.fetch(
            SQL(
                "SELECT o.opportunity_id, o.title, o.owner, o.region, o.stage, o.amount, "
                "o.currency, o.stage_entered_at, t.days AS threshold_days, "
                "extract(epoch FROM %s - o.stage_entered_at)::float8 / {day} AS days_in_stage, "
                "{since} AS stalled_since "
                "FROM {deals} o JOIN unnest(%s::text[], %s::int[]) AS t(stage, days) "
                "ON t.stage = o.stage {where} "
                "ORDER BY stalled_since, o.opportunity_id LIMIT %s"
            ).format(
                day=SQL(str(SECONDS_PER_DAY)),
                since=SQL(STALLED_SINCE),
                deals=self.reader("opportunities"),
                where=_where(conditions),
            ),
            [now, stages, [days[s] for s in stages], *params, limit + 1],
        )
        return page_of(rows, limit, stalled_key)

    def opportunities(
        self,
        *,
        owner: str | None = None,
        stage: str | None = None,
        customer_id: UUID | None = None,
        region: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> tuple[list[Row], str | None]:
        """Opportunities, newest first, filtered; `visible` keeps those a reader may see."""
        check_limit(limit)
        self.wait_for(min_position)
        conditions: list[Composed | SQL] = []
        params: list[Any] = []
        if visible is not None:
            conditions, params = visible.where(region="region", owner="owner")
        for name, value in (
            ("owner", owner),
            ("stage", stage),
            ("customer_id", customer_id),
            ("region", region),
        ):
            if value is not None:
                conditions.append(SQL("{} = %s").format(Identifier(name)))
                params.append(value)
        if cursor is not None:
            conditions.append(SQL("(opened_at, opportunity_id) < (%s, %s)"))
            params.extend(decode_cursor(cursor, DEAL_KEY_PARSERS, "opportunities"))
        rows = self.fetch(
            SQL("SELECT * FROM {} {} ORDER BY opened_at DESC, opportunity_id DESC LIMIT %s").format(
                self.reader("opportunities"), _where(conditions)
            ),
            [*params, limit + 1],
        )
        return page_of(rows, limit, deal_key, "opportunities")

    def opportunity(self, opportunity_id: UUID, *, min_position: int | None = None) -> Row | None:
        """One opportunity's row, or None."""
        self.wait_for(min_position)
        rows = self.fetch(
            SQL("SELECT * FROM {} WHERE opportunity_id = %s").format(self.reader("opportunities")),
            (opportunity_id,),
        )
        return rows[0] if rows else None


def deal_key(row: Row) -> list[Any]:
    """An opportunity's listing key, as its cursor carries it (DEAL_KEY_PARSERS read it back)."""
    return [row["opened_at"].isoformat(), str(row["opportunity_id"])]


DEAL_KEY_PARSERS = (datetime.fromisoformat, UUID)


# A deal is stalled from the moment it has sat in its stage for the stage's threshold.
STALLED_SINCE = "(o.stage_entered_at + make_interval(days => t.days))"


def stalled_key(row: Row) -> list[Any]:
    """A stalled deal's sort key, as its cursor carries it (STALLED_KEY_PARSERS read it back)."""
    return [row["stalled_since"].isoformat(), str(row["opportunity_id"])]


STALLED_KEY_PARSERS = (datetime.fromisoformat, UUID)


def _slice(
    entered: str,
    period: Period | None,
    owner: str | None,
    region: str | None,
    channel: str | None,
    campaign: str | None,
    alias: str | None = None,
) -> tuple[list[Composed], list[Any]]:
    """The conditions selecting the records of a slice, and their parameters."""

    def column(name: str) -> Identifier:
        return Identifier(alias, name) if alias else Identifier(name)

    conditions: list[Composed] = []
    params: list[Any] = []
    if period is not None:
        conditions.append(SQL("{0} >= %s AND {0} < %s").format(column(entered)))
        params.extend(period.bounds())
    for name, value in (
        ("owner", owner),
        ("region", region),
        ("channel", channel),
        ("campaign", campaign),
    ):
        if value is not None:
            conditions.append(SQL("{} = %s").format(column(name)))
            params.append(value)
    return conditions, params


def _restrict(conditions: list[Composed], params: list[Any], visible: Visibility | None) -> None:
    """Add the conditions keeping only the records `visible` admits (by their owner and region)."""
    if visible is not None:
        where, values = visible.where(region="region", owner="owner")
        conditions.extend(SQL("({})").format(condition) for condition in where)
        params.extend(values)


def _where(conditions: Sequence[Composed | SQL]) -> Composed | SQL:
    """A WHERE clause joining `conditions` (nothing when there are none)."""
    return SQL("WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
