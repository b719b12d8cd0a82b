"""Handoffs: how long each step takes from its cause to its effect, with p50/p90 per team and month.

A handoff is one cause waiting for its effect:
- `capture_to_assignment`: a lead was captured -> it got its first owner;
- `assignment_to_first_activity`: a lead was first assigned -> the first activity logged after it
  (a reassignment before that activity hands the wait to the new owner);
- `qualification_to_conversion`: a lead was first qualified -> it was converted;
- `win_to_onboarding`: a deal was won -> the ticket whose `causation_id` is the win's event id
  (the onboarding ticket the deal-won saga opens) was opened;
- `breach_to_escalation`: a ticket missed an SLA due time (the SLA escalation saga records the
  breach and escalates the ticket at once) -> the first action of a person on the ticket after
  it: any ticket event (assigned, responded, paused, resumed, escalated, reprioritised,
  resolved, closed, reopened) whose actor is not a saga or the system (one handoff per ticket
  and missed measure, the first breach of it).
There is one row per handoff (kind, cause record, measure), open (`effect_at` null) until the
effect happens. Times are the events' recorded timestamps; `month` is the cause's calendar
month in UTC.

`team` is the team the handoff went to. A breach's is its ticket's. A lead's or a deal's is its
owner's team, as the log names it: the lead-routing saga gives every lead it routes a
first-contact task (`TaskCreated`, `source_saga` "lead_routing") for the team whose member (or
queue) owns the lead, so that task teaches `owner_teams` the lead owner's team and sets it on
that lead's open handoffs. A handoff takes its owner's known team when it gets its owner; an
owner the saga has never named a team for leaves it null, and reports then group by the owner.
A rebuild from the log gives the same teams; a change of the routing rules moves no handoff.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.lead import LeadActivityLogged, LeadAssigned, LeadCaptured, LeadConverted, LeadQualified
from domain.opportunity import OpportunityOpened, OpportunityWon
from domain.shared import DomainEvent
from domain.task import TaskCreated
from domain.ticket import (
    SlaMeasure,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketEvent,
    TicketFirstResponded,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketReopened,
    TicketResolved,
    TicketResumed,
    TicketSlaBreached,
)
from projections.bulk import BulkRebuild
from projections.event_ids import event_id_of
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles
from projections.visibility import CUSTOMERS, Visibility

__all__ = ["HANDOFF_KINDS", "HandoffsProjection", "HandoffsRebuild", "HandoffsView"]

CAPTURE: Final = "capture_to_assignment"
ASSIGNMENT: Final = "assignment_to_first_activity"
QUALIFICATION: Final = "qualification_to_conversion"
WIN: Final = "win_to_onboarding"
BREACH: Final = "breach_to_escalation"
HANDOFF_KINDS: tuple[str, ...] = (CAPTURE, ASSIGNMENT, QUALIFICATION, WIN, BREACH)
NO_MEASURE: Final = ""  # the `measure` of every handoff but a breach
LEAD_KINDS: tuple[str, ...] = (CAPTURE, ASSIGNMENT, QUALIFICATION)
# The saga whose first-contact tasks name a lead owner's team (sagas.lead_routing; projections
# do not import sagas, tests check the name).
ROUTING_SAGA: Final = "lead_routing"
# Actors that are not a person: their ticket events do not answer a breach.
AUTOMATED_ACTORS: tuple[str, ...] = ("saga:", "system:")
# What a person may do to a ticket (TicketAssigned too, handled with the ticket's team).
TICKET_ACTIONS: tuple[type[TicketEvent], ...] = (
    TicketFirstResponded,
    TicketPausedForCustomer,
    TicketResumed,
    TicketEscalated,
    TicketPriorityChanged,
    TicketResolved,
    TicketClosed,
    TicketReopened,
)

# Reports group by the team an event named, else by the owner (a team of one, or a queue).
TEAM = "coalesce(team, owner)"
SECONDS = "extract(epoch FROM effect_at - cause_at)"


def month_of(at: datetime) -> str:
    """The calendar month (UTC) a cause happened in, as `YYYY-MM`."""
    return at.astimezone(UTC).strftime("%Y-%m")


def by_a_person(event: DomainEvent) -> bool:
    """Whether a person (not a saga, not the system) recorded the event."""
    return not event.actor.startswith(AUTOMATED_ACTORS)


def names_an_owners_team(event: TaskCreated) -> bool:
    """Whether the task is a lead's first contact, given by the routing saga to the owner's team."""
    return event.source_saga == ROUTING_SAGA and event.related_kind == "lead"


class HandoffsView(ReadModelView):
    """One row per handoff; `leads`, `deals` and `tickets` hold what later events need."""

    name: ClassVar[str] = "handoffs"
    schema: ClassVar[int] = 2  # 2: owner_teams; a breach waits for a person's action
    tables: ClassVar[dict[str, str]] = {
        "handoffs": (
            "kind text NOT NULL, cause_id uuid NOT NULL, cause_event_id uuid NOT NULL, "
            "cause_at timestamptz NOT NULL, effect_id uuid, effect_at timestamptz, "
            "customer_id uuid, region text, owner text, team text, month text NOT NULL, "
            "measure text NOT NULL DEFAULT '', PRIMARY KEY (kind, cause_id, measure)"
        ),
        "leads": "lead_id uuid PRIMARY KEY, region text NOT NULL, owner text",
        "deals": "opportunity_id uuid PRIMARY KEY, customer_id uuid NOT NULL, owner text NOT NULL",
        "tickets": "ticket_id uuid PRIMARY KEY, customer_id uuid NOT NULL, agent text, team text",
        "owner_teams": "owner text PRIMARY KEY, team text NOT NULL",
    }
    indexes: ClassVar[dict[str, list[str]]] = {
        "handoffs": ["month, kind", "cause_event_id", "owner"]
    }

    def handoffs(
        self,
        *,
        kind: str | None = None,
        team: str | None = None,
        month: str | None = None,
        visible: Visibility | None = None,
        min_position: int | None = None,
    ) -> list[Row]:
        """Per kind, team and month: handoffs, completed and open ones, p50/p90 seconds taken.

        `team` matches the reported team (the named team, else the owner). `visible` restricts
        the rows to those a reader may see (None: all of them); a row without a region of its own
        (a deal's) has its customer's region.
        """
        self.wait_for(min_position)
        source: Composed = SQL("{}").format(self.reader("handoffs"))
        where: list[Composed | SQL] = []
        params: list[Any] = []
        if visible is not None:
            if visible.region is not None:
                source = SQL(
                    "(SELECT h.*, coalesce(h.region, c.region) AS scope_region FROM {} h "
                    "LEFT JOIN {} c ON c.customer_id = h.customer_id) AS h"
                ).format(self.reader("handoffs"), CUSTOMERS)
            where, params = visible.where(region="scope_region", owner="owner")
        for column, value in (("kind", kind), (TEAM, team), ("month", month)):
            if value is not None:
                where.append(SQL(column + " = %s"))
                params.append(value)
        statement = SQL(
            "SELECT kind, " + TEAM + " AS team, month, count(*) AS count, "
            "count(effect_at) AS completed, count(*) - count(effect_at) AS open, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY " + SECONDS + ") AS p50_seconds, "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY " + SECONDS + ") AS p90_seconds "
            "FROM {}"
        ).format(source)
        if where:
            statement += SQL(" WHERE ") + SQL(" AND ").join(where)
        statement += SQL(" GROUP BY 1, 2, 3 ORDER BY month, kind, team NULLS FIRST")
        return self.fetch(statement, params)

    def rows(self, *, kind: str | None = None, min_position: int | None = None) -> list[Row]:
        """Every handoff row (of one kind), oldest cause first."""
        self.wait_for(min_position)
        statement = SQL("SELECT * FROM {}").format(self.reader("handoffs"))
        params: list[Any] = []
        if kind is not None:
            statement += SQL(" WHERE kind = %s")
            params.append(kind)
        return self.fetch(statement + SQL(" ORDER BY cause_at, kind, cause_id"), params)


class HandoffsProjection(ReadModelProjection):
    """Fills `handoffs` from lead, deal and ticket events."""

    name = "handoffs"

    @handles(LeadCaptured)
    def captured(self, curs: Cursor[DictRow], event: LeadCaptured) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (lead_id, region) VALUES (%s, %s) ON CONFLICT (lead_id) DO NOTHING"
            ).format(self.view.table("leads")),
            (event.originator_id, event.region),
        )
        curs.execute(
            SQL(
                "INSERT INTO {} (kind, cause_id, cause_event_id, cause_at, region, month) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kind, cause_id, measure) DO NOTHING"
            ).format(self.view.table("handoffs")),
            (
                CAPTURE,
                event.originator_id,
                event.event_id,
                event.timestamp,
                event.region,
                month_of(event.timestamp),
            ),
        )

    @handles(LeadAssigned)
    def assigned(self, curs: Cursor[DictRow], event: LeadAssigned) -> None:
        lead = event.originator_id
        curs.execute(
            SQL("UPDATE {} SET owner = %s WHERE lead_id = %s").format(self.view.table("leads")),
            (event.owner, lead),
        )
        team = self._team_of(curs, event.owner)
        self._effect(curs, CAPTURE, lead, event.timestamp, owner=event.owner, team=team)
        curs.execute(
            SQL(
                "INSERT INTO {} AS h (kind, cause_id, cause_event_id, cause_at, region, owner, "
                "team, month) SELECT %s, lead_id, %s, %s, region, %s, %s, %s FROM {} "
                "WHERE lead_id = %s ON CONFLICT (kind, cause_id, measure) DO UPDATE SET "
                "owner = EXCLUDED.owner, team = EXCLUDED.team WHERE h.effect_at IS NULL"
            ).format(self.view.table("handoffs"), self.view.table("leads")),
            (
                ASSIGNMENT,
                event.event_id,
                event.timestamp,
                event.owner,
                team,
                month_of(event.timestamp),
                lead,
            ),
        )

    @handles(TaskCreated)
    def task_created(self, curs: Cursor[DictRow], event: TaskCreated) -> None:
        if not names_an_owners_team(event):
            return
        curs.execute(
            SQL(
                "INSERT INTO {} (owner, team) SELECT owner, %s FROM {} WHERE lead_id = %s "
                "AND owner IS NOT NULL ON CONFLICT (owner) DO UPDATE SET team = EXCLUDED.team"
            ).format(self.view.table("owner_teams"), self.view.table("leads")),
            (event.team, event.related_id),
        )
        curs.execute(
            SQL(
                "UPDATE {} h SET team = %s FROM {} l WHERE l.lead_id = %s "
                "AND h.cause_id = l.lead_id AND h.owner = l.owner AND h.kind = ANY(%s)"
            ).format(self.view.table("handoffs"), self.view.table("leads")),
            (event.team, event.related_id, list(LEAD_KINDS)),
        )

    @handles(LeadActivityLogged)
    def activity(self, curs: Cursor[DictRow], event: LeadActivityLogged) -> None:
        self._effect(curs, ASSIGNMENT, event.originator_id, event.timestamp)

    @handles(LeadQualified)
    def qualified(self, curs: Cursor[DictRow], event: LeadQualified) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (kind, cause_id, cause_event_id, cause_at, region, owner, team, "
                "month) SELECT %s, l.lead_id, %s, %s, l.region, l.owner, t.team, %s FROM {} l "
                "LEFT JOIN {} t ON t.owner = l.owner WHERE l.lead_id = %s "
                "ON CONFLICT (kind, cause_id, measure) DO NOTHING"
            ).format(
                self.view.table("handoffs"),
                self.view.table("leads"),
                self.view.table("owner_teams"),
            ),
            (
                QUALIFICATION,
                event.event_id,
                event.timestamp,
                month_of(event.timestamp),
                event.originator_id,
            ),
        )

    @handles(LeadConverted)
    def converted(self, curs: Cursor[DictRow], event: LeadConverted) -> None:
        self._effect(
            curs,
            QUALIFICATION,
            event.originator_id,
            event.timestamp,
            effect_id=event.customer_id,
            customer_id=event.customer_id,
        )

    @handles(OpportunityOpened)
    def opened(self, curs: Cursor[DictRow], event: OpportunityOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (opportunity_id, customer_id, owner) VALUES (%s, %s, %s) "
                "ON CONFLICT (opportunity_id) DO NOTHING"
            ).format(self.view.table("deals")),
            (event.originator_id, event.customer_id, event.owner),
        )

    @handles(OpportunityWon)
    def won(self, curs: Cursor[DictRow], event: OpportunityWon) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (kind, cause_id, cause_event_id, cause_at, customer_id, owner, "
                "team, month) SELECT %s, d.opportunity_id, %s, %s, d.customer_id, d.owner, "
                "t.team, %s FROM {} d LEFT JOIN {} t ON t.owner = d.owner "
                "WHERE d.opportunity_id = %s ON CONFLICT (kind, cause_id, measure) DO NOTHING"
            ).format(
                self.view.table("handoffs"),
                self.view.table("deals"),
                self.view.table("owner_teams"),
            ),
            (WIN, event.event_id, event.timestamp, month_of(event.timestamp), event.originator_id),
        )

    @handles(TicketOpened)
    def ticket_opened(self, curs: Cursor[DictRow], event: TicketOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (ticket_id, customer_id) VALUES (%s, %s) "
                "ON CONFLICT (ticket_id) DO NOTHING"
            ).format(self.view.table("tickets")),
            (event.originator_id, event.customer_id),
        )
        if event.causation_id is None:
            return
        curs.execute(
            SQL(
                "UPDATE {} SET effect_at = %s, effect_id = %s WHERE kind = %s "
                "AND cause_event_id = %s AND effect_at IS NULL"
            ).format(self.view.table("handoffs")),
            (event.timestamp, event.originator_id, WIN, event.causation_id),
        )

    @handles(TicketAssigned)
    def ticket_assigned(self, curs: Cursor[DictRow], event: TicketAssigned) -> None:
        curs.execute(
            SQL("UPDATE {} SET agent = %s, team = %s WHERE ticket_id = %s").format(
                self.view.table("tickets")
            ),
            (event.agent, event.team, event.originator_id),
        )
        self.ticket_acted(curs, event)

    @handles(TicketSlaBreached)
    def breached(self, curs: Cursor[DictRow], event: TicketSlaBreached) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (kind, cause_id, measure, cause_event_id, cause_at, customer_id, "
                "owner, team, month) SELECT %s, ticket_id, %s, %s, %s, customer_id, agent, team, "
                "%s FROM {} WHERE ticket_id = %s ON CONFLICT (kind, cause_id, measure) DO NOTHING"
            ).format(self.view.table("handoffs"), self.view.table("tickets")),
            (
                BREACH,
                str(event.measure),
                event.event_id,
                event.timestamp,
                month_of(event.timestamp),
                event.originator_id,
            ),
        )

    @handles(*TICKET_ACTIONS)
    def ticket_acted(self, curs: Cursor[DictRow], event: TicketEvent) -> None:
        """A person's first action on a ticket answers its open breaches (sagas' do not)."""
        if by_a_person(event):
            self._effect(curs, BREACH, event.originator_id, event.timestamp)

    def _team_of(self, curs: Cursor[DictRow], owner: str) -> str | None:
        """The owner's team as the routing saga last named it (None: never named)."""
        curs.execute(
            SQL("SELECT team FROM {} WHERE owner = %s").format(self.view.table("owner_teams")),
            (owner,),
        )
        row = curs.fetchone()
        return None if row is None else str(row["team"])

    def _effect(
        self, curs: Cursor[DictRow], kind: str, cause_id: UUID, at: datetime, **columns: Any
    ) -> None:
        """The effect of an open handoff happened (nothing changes for a completed one)."""
        assignments = SQL("").join(SQL(", {} = %s").format(Identifier(c)) for c in columns)
        curs.execute(
            SQL(
                "UPDATE {} SET effect_at = %s{} WHERE kind = %s AND cause_id = %s "
                "AND effect_at IS NULL"
            ).format(self.view.table("handoffs"), assignments),
            (at, *columns.values(), kind, cause_id),
        )


class HandoffsRebuild(BulkRebuild, rebuilds=HandoffsProjection):
    """HandoffsProjection's statements, applied to rows in memory (for rebuilds)."""

    def __init__(self, view: ReadModelView, columns: dict[str, tuple[str, ...]]) -> None:
        super().__init__(view, columns)
        self.wins: dict[UUID, UUID] = {}  # a win's event id -> the won deal

    @handles(LeadCaptured)
    def captured(self, event: LeadCaptured) -> None:
        lead = event.originator_id
        self.tables["leads"].add_new(lead, lead_id=lead, region=event.region)
        self._add_new(CAPTURE, lead, event, region=event.region)

    @handles(LeadAssigned)
    def assigned(self, event: LeadAssigned) -> None:
        lead = self.tables["leads"].set(event.originator_id, owner=event.owner)
        team = self._team_of(event.owner)
        self._effect(CAPTURE, event.originator_id, event.timestamp, owner=event.owner, team=team)
        if lead is None:
            return  # INSERT ... SELECT of no row
        row = self.tables["handoffs"].get((ASSIGNMENT, event.originator_id, NO_MEASURE))
        if row is None:
            self._add_new(
                ASSIGNMENT,
                event.originator_id,
                event,
                region=lead["region"],
                owner=event.owner,
                team=team,
            )
        elif row["effect_at"] is None:
            row.update(owner=event.owner, team=team)

    @handles(TaskCreated)
    def task_created(self, event: TaskCreated) -> None:
        lead = self.tables["leads"].get(event.related_id)
        if not names_an_owners_team(event) or lead is None or lead["owner"] is None:
            return
        owner = lead["owner"]
        self.tables["owner_teams"].put(owner, owner=owner, team=event.team)
        for kind in LEAD_KINDS:
            row = self.tables["handoffs"].get((kind, event.related_id, NO_MEASURE))
            if row is not None and row["owner"] == owner:
                row["team"] = event.team

    @handles(LeadActivityLogged)
    def activity(self, event: LeadActivityLogged) -> None:
        self._effect(ASSIGNMENT, event.originator_id, event.timestamp)

    @handles(LeadQualified)
    def qualified(self, event: LeadQualified) -> None:
        lead = self.tables["leads"].get(event.originator_id)
        if lead is not None:
            self._add_new(
                QUALIFICATION,
                event.originator_id,
                event,
                region=lead["region"],
                owner=lead["owner"],
                team=self._team_of(lead["owner"]),
            )

    @handles(LeadConverted)
    def converted(self, event: LeadConverted) -> None:
        self._effect(
            QUALIFICATION,
            event.originator_id,
            event.timestamp,
            effect_id=event.customer_id,
            customer_id=event.customer_id,
        )

    @handles(OpportunityOpened)
    def opened(self, event: OpportunityOpened) -> None:
        self.tables["deals"].add_new(
            event.originator_id,
            opportunity_id=event.originator_id,
            customer_id=event.customer_id,
            owner=event.owner,
        )

    @handles(OpportunityWon)
    def won(self, event: OpportunityWon) -> None:
        deal = self.tables["deals"].get(event.originator_id)
        if deal is None:
            return
        row = self._add_new(
            WIN,
            event.originator_id,
            event,
            customer_id=deal["customer_id"],
            owner=deal["owner"],
            team=self._team_of(deal["owner"]),
        )
        if row is not None:
            self.wins[event_id_of(event)] = event.originator_id

    @handles(TicketOpened)
    def ticket_opened(self, event: TicketOpened) -> None:
        ticket = event.originator_id
        self.tables["tickets"].add_new(ticket, ticket_id=ticket, customer_id=event.customer_id)
        deal = self.wins.get(event.causation_id) if event.causation_id is not None else None
        if deal is not None:
            self._effect(WIN, deal, event.timestamp, effect_id=ticket)

    @handles(TicketAssigned)
    def ticket_assigned(self, event: TicketAssigned) -> None:
        self.tables["tickets"].set(event.originator_id, agent=event.agent, team=event.team)
        self.ticket_acted(event)

    @handles(TicketSlaBreached)
    def breached(self, event: TicketSlaBreached) -> None:
        ticket = self.tables["tickets"].get(event.originator_id)
        if ticket is not None:
            self._add_new(
                BREACH,
                event.originator_id,
                event,
                measure=str(event.measure),
                customer_id=ticket["customer_id"],
                owner=ticket["agent"],
                team=ticket["team"],
            )

    @handles(*TICKET_ACTIONS)
    def ticket_acted(self, event: TicketEvent) -> None:
        if by_a_person(event):
            for measure in SlaMeasure:
                self._effect(BREACH, event.originator_id, event.timestamp, str(measure))

    def _team_of(self, owner: str | None) -> str | None:
        row = None if owner is None else self.tables["owner_teams"].get(owner)
        return None if row is None else str(row["team"])

    def _add_new(
        self, kind: str, cause_id: UUID, cause: Any, measure: str = NO_MEASURE, **values: Any
    ) -> Row | None:
        """INSERT ... ON CONFLICT DO NOTHING of the handoff `cause` starts."""
        return self.tables["handoffs"].add_new(
            (kind, cause_id, measure),
            kind=kind,
            cause_id=cause_id,
            measure=measure,
            cause_event_id=event_id_of(cause),
            cause_at=cause.timestamp,
            month=month_of(cause.timestamp),
            **values,
        )

    def _effect(
        self, kind: str, cause_id: UUID, at: datetime, measure: str = NO_MEASURE, **columns: Any
    ) -> None:
        """The effect of an open handoff happened (nothing changes for a completed one)."""
        key = (kind, cause_id, measure)
        row = self.tables["handoffs"].get(key)
        if row is not None and row["effect_at"] is None:
            self.tables["handoffs"].set(key, effect_at=at, **columns)
