"""Sales funnel: stages, conversion from lead to won, days in each stage, and stalled deals."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.customer import CustomerProfileUpdated, CustomerRegistered
from domain.lead import (
    LeadAssigned,
    LeadCaptured,
    LeadConverted,
    LeadDisqualified,
    LeadQualified,
    LeadReopened,
)
from domain.opportunity import (
    PIPELINE,
    STAGES,
    OpportunityAmountChanged,
    OpportunityEvent,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityStageChanged,
    OpportunityWon,
    Stage,
)
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles

# Days a deal may sit in a stage before it counts as stalled (callers pass their own).
DEFAULT_STALL_THRESHOLDS: Mapping[str, int] = MappingProxyType(
    {"qualification": 14, "needs_analysis": 21, "proposal": 30, "negotiation": 30}
)
SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class Period:
    """A calendar month, or a week starting on Monday, in a time zone: when records entered."""

    unit: Literal["month", "week"]
    day: date  # any day of the period
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if self.unit not in ("month", "week"):
            raise ValueError(f"a period is a 'month' or a 'week', not {self.unit!r}")

    @classmethod
    def month(cls, year: int, month: int, time_zone: str = "UTC") -> Period:
        return cls("month", date(year, month, 1), time_zone)

    @classmethod
    def week_of(cls, day: date, time_zone: str = "UTC") -> Period:
        return cls("week", day, time_zone)

    def bounds(self) -> tuple[datetime, datetime]:
        """The first instant of the period and the first instant after it."""
        if self.unit == "week":
            start = self.day - timedelta(days=self.day.weekday())
            end = start + timedelta(days=7)
        else:
            start = self.day.replace(day=1)
            end = (start + timedelta(days=32)).replace(day=1)
        zone = ZoneInfo(self.time_zone)
        return datetime.combine(start, time(), zone), datetime.combine(end, time(), zone)


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
    ) -> list[Row]:
        """Opportunities per current stage and currency: (stage, currency, count, amount)."""
        self.wait_for(min_position)
        conditions, params = _slice("opened_at", period, owner, region, channel, campaign)
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
    ) -> dict[str, int | float | None]:
        """Counts at each step from lead to won, and the rate of each step (None when 0/0).

        Leads are counted by capture time, opportunities by open time, each in the slice.
        """
        self.wait_for(min_position)
        conditions, params = _slice("captured_at", period, owner, region, channel, campaign)
        leads = self.fetch(
            SQL(
                "SELECT count(*) AS leads, count(qualified_at) AS qualified, "
                "count(converted_at) AS converted, count(*) FILTER (WHERE converted_at IS NOT "
                "NULL AND opportunity_id IS NOT NULL) AS converted_with_opportunity FROM {} {}"
            ).format(self.reader("leads"), _where(conditions)),
            params,
        )[0]
        conditions, params = _slice("opened_at", period, owner, region, channel, campaign)
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
    ) -> list[Row]:
        """(stage, periods, average_days) per open stage, in pipeline order.

        Only finished stays count, unless `now` is given: then current stays count up to now.
        """
        self.wait_for(min_position)
        conditions, params = _slice("opened_at", period, owner, region, channel, campaign, "o")
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
    ) -> tuple[list[Row], str | None]:
        """Open deals longer in their stage than its threshold (days), longest overdue first.

        `thresholds` override the defaults per stage. Rows add `threshold_days`, `days_in_stage`
        and `stalled_since` (when the threshold passed), the key the opaque cursor pages by.
        """
        self.wait_for(min_position)
        days = {**DEFAULT_STALL_THRESHOLDS, **thresholds}
        stages = [stage for stage in PIPELINE if stage in days]
        conditions, params = _slice("opened_at", None, owner, region, None, None, "o")
        conditions.append(SQL("{} < %s").format(SQL(STALLED_SINCE)))
        params.append(now)
        if cursor is not None:
            conditions.append(SQL("({}, o.opportunity_id) > (%s, %s)").format(SQL(STALLED_SINCE)))
            params.extend(decode_cursor(cursor))
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
        page, more = rows[:limit], len(rows) > limit
        return page, encode_cursor(page[-1]) if more else None


# A deal is stalled from the moment it has sat in its stage for the stage's threshold.
STALLED_SINCE = "(o.stage_entered_at + make_interval(days => t.days))"


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


def _where(conditions: list[Composed]) -> Composed | SQL:
    """A WHERE clause joining `conditions` (nothing when there are none)."""
    return SQL("WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def encode_cursor(row: Row) -> str:
    """An opaque cursor: the sort key of the last row of a page."""
    key = [row["stalled_since"].isoformat(), str(row["opportunity_id"])]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The sort key in a cursor; a malformed cursor is a ValueError."""
    try:
        stalled_since, opportunity_id = orjson.loads(base64.urlsafe_b64decode(cursor))
        return [datetime.fromisoformat(stalled_since), UUID(opportunity_id)]
    except (ValueError, TypeError, orjson.JSONDecodeError) as error:
        raise InvalidCursor(cursor) from error


class InvalidCursor(ValueError):
    """A pagination cursor that this read model did not issue."""


class SalesFunnelProjection(ReadModelProjection):
    """Fills `sales_funnel` from customer, lead and opportunity events."""

    name = "sales_funnel"

    @handles(CustomerRegistered)
    def customer_registered(self, curs: Cursor[DictRow], event: CustomerRegistered) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, region) VALUES (%s, %s) "
                "ON CONFLICT (customer_id) DO NOTHING"
            ).format(self.view.table("customers")),
            (event.originator_id, event.region),
        )

    @handles(CustomerProfileUpdated)
    def customer_updated(self, curs: Cursor[DictRow], event: CustomerProfileUpdated) -> None:
        region = event.changes.get("region")
        if region is None:
            return
        for table, key in (("customers", "customer_id"), ("opportunities", "customer_id")):
            curs.execute(
                SQL("UPDATE {} SET region = %s WHERE {} = %s").format(
                    self.view.table(table), Identifier(key)
                ),
                (region, event.originator_id),
            )

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
