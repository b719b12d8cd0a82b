"""Task list: one row per task, by assignee, team and due time; overdue is asked at query time."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Literal

from domain.customer import CustomerErased
from domain.lead import LeadErased
from domain.personal import REDACTED
from domain.task import TaskCancelled, TaskCompleted, TaskCreated, TaskReassigned
from projections.bulk import BulkRebuild
from projections.erasure import ErasureEvent, erased_ids
from projections.pagination import InvalidCursor, check_limit, decode_cursor, page_of
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles
from projections.visibility import Visibility

__all__ = [
    "InvalidCursor",
    "TaskListProjection",
    "TaskListRebuild",
    "TaskListView",
    "is_overdue",
]

# Soonest due first; the id breaks ties (keyset pagination).
TASK_KEY = "due_at, task_id"


class TaskListView(ReadModelView):
    """One row per task, kept current; whether a task is overdue is computed when read."""

    name: ClassVar[str] = "task_list"
    tables: ClassVar[dict[str, str]] = {
        "tasks": (
            "task_id uuid PRIMARY KEY, title text NOT NULL, assignee text, team text NOT NULL, "
            "related_kind text NOT NULL, related_id uuid NOT NULL, "
            "due_at timestamptz NOT NULL, priority text NOT NULL, status text NOT NULL, "
            "source_saga text, cause_id uuid, created_at timestamptz NOT NULL, "
            "closed_at timestamptz, updated_at timestamptz NOT NULL"
        )
    }
    schema: ClassVar[int] = 2  # 2: related_id index (erasure, subject export)
    indexes: ClassVar[dict[str, list[str]]] = {
        "tasks": [TASK_KEY, "assignee", "team", "status", "related_id"]
    }

    def tasks(
        self,
        *,
        assignee: str | None = None,
        team: str | None = None,
        status: str | None = None,
        overdue_at: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> tuple[list[Row], str | None]:
        """Tasks, soonest due first.

        `overdue_at`: only tasks still open whose due time is before it (pass the clock's now).
        `visible` restricts the rows to those a reader may see (None: all of them).
        """
        check_limit(limit)
        self.wait_for(min_position)
        where: list[Composed | SQL] = []
        params: list[Any] = []
        if visible is not None:
            where, params = visible.where(assignee="assignee", team="team")
        if assignee is not None:
            where.append(SQL("assignee = %s"))
            params.append(assignee)
        if team is not None:
            where.append(SQL("team = %s"))
            params.append(team)
        if status is not None:
            where.append(SQL("status = %s"))
            params.append(status)
        if overdue_at is not None:
            where.append(SQL("status = 'open' AND due_at < %s"))
            params.append(overdue_at)
        if cursor is not None:
            where.append(SQL("({}) > (%s, %s)").format(SQL(TASK_KEY)))
            params.extend(decode_cursor(cursor, TASK_KEY_PARSERS))
        statement = SQL("SELECT * FROM {}").format(self.reader("tasks"))
        if where:
            statement += SQL(" WHERE ") + SQL(" AND ").join(where)
        statement += SQL(" ORDER BY {} LIMIT %s").format(SQL(TASK_KEY))
        return page_of(self.fetch(statement, [*params, limit + 1]), limit, task_key)

    def task(self, task_id: UUID, *, min_position: int | None = None) -> Row | None:
        """One task's row, or None."""
        self.wait_for(min_position)
        rows = self.fetch(
            SQL("SELECT * FROM {} WHERE task_id = %s").format(self.reader("tasks")), (task_id,)
        )
        return rows[0] if rows else None

    def about(self, related_ids: list[UUID]) -> list[Row]:
        """Every task about one of these records, oldest due first (for a subject export)."""
        return self.fetch(
            SQL("SELECT * FROM {} WHERE related_id = ANY(%s) ORDER BY due_at, task_id").format(
                self.reader("tasks")
            ),
            (related_ids,),
        )


def is_overdue(row: Row, now: datetime) -> bool:
    """Whether a task's row is still open after its due time (as `Task.is_overdue`)."""
    return bool(row["status"] == "open" and now > row["due_at"])


def task_key(row: Row) -> list[Any]:
    """The TASK_KEY of a row, as its cursor carries it (TASK_KEY_PARSERS read it back)."""
    return [row["due_at"].isoformat(), str(row["task_id"])]


TASK_KEY_PARSERS = (datetime.fromisoformat, UUID)


class TaskListProjection(ReadModelProjection):
    """Fills `task_list` from task events."""

    name = "task_list"

    @handles(TaskCreated)
    def created(self, curs: Cursor[DictRow], event: TaskCreated) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (task_id, title, assignee, team, related_kind, related_id, "
                "due_at, priority, status, source_saga, cause_id, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open', %s, %s, %s, %s) "
                "ON CONFLICT (task_id) DO NOTHING"
            ).format(self.view.table("tasks")),
            (
                event.originator_id,
                event.title,
                event.assignee,
                event.team,
                event.related_kind,
                event.related_id,
                event.due_at,
                event.priority,
                event.source_saga,
                event.cause_id,
                event.timestamp,
                event.timestamp,
            ),
        )

    @handles(TaskReassigned)
    def reassigned(self, curs: Cursor[DictRow], event: TaskReassigned) -> None:
        self._set(curs, event, assignee=event.assignee, team=event.team)

    @handles(TaskCompleted)
    def completed(self, curs: Cursor[DictRow], event: TaskCompleted) -> None:
        self._set(curs, event, status="completed", closed_at=event.timestamp)

    @handles(TaskCancelled)
    def cancelled(self, curs: Cursor[DictRow], event: TaskCancelled) -> None:
        self._set(curs, event, status="cancelled", closed_at=event.timestamp)

    @handles(CustomerErased, LeadErased)
    def erased(self, curs: Cursor[DictRow], event: ErasureEvent) -> None:
        # A task's data subject is its related record: erasing either erases the task's title.
        curs.execute(
            SQL(
                "UPDATE {} SET title = {} WHERE task_id = ANY(%(ids)s) OR related_id = ANY(%(ids)s)"
            ).format(self.view.table("tasks"), Literal(REDACTED)),
            {"ids": erased_ids(event)},
        )

    def _set(self, curs: Cursor[DictRow], event: Any, **columns: Any) -> None:
        assignments = SQL(", ").join(SQL(f"{column} = %s") for column in columns)
        curs.execute(
            SQL("UPDATE {} SET {}, updated_at = %s WHERE task_id = %s").format(
                self.view.table("tasks"), assignments
            ),
            (*columns.values(), event.timestamp, event.originator_id),
        )


class TaskListRebuild(BulkRebuild, rebuilds=TaskListProjection):
    """TaskListProjection's statements, applied to rows in memory (for rebuilds)."""

    @handles(TaskCreated)
    def created(self, event: TaskCreated) -> None:
        self.tables["tasks"].add_new(
            event.originator_id,
            task_id=event.originator_id,
            title=event.title,
            assignee=event.assignee,
            team=event.team,
            related_kind=event.related_kind,
            related_id=event.related_id,
            due_at=event.due_at,
            priority=event.priority,
            status="open",
            source_saga=event.source_saga,
            cause_id=event.cause_id,
            created_at=event.timestamp,
            updated_at=event.timestamp,
        )

    @handles(TaskReassigned)
    def reassigned(self, event: TaskReassigned) -> None:
        self._set(event, assignee=event.assignee, team=event.team)

    @handles(TaskCompleted)
    def completed(self, event: TaskCompleted) -> None:
        self._set(event, status="completed", closed_at=event.timestamp)

    @handles(TaskCancelled)
    def cancelled(self, event: TaskCancelled) -> None:
        self._set(event, status="cancelled", closed_at=event.timestamp)

    @handles(CustomerErased, LeadErased)
    def erased(self, event: ErasureEvent) -> None:
        ids = set(erased_ids(event))
        for row in self.tables["tasks"]:
            if row["task_id"] in ids or row["related_id"] in ids:
                row["title"] = REDACTED

    def _set(self, event: Any, **columns: Any) -> None:
        self.tables["tasks"].set(event.originator_id, **columns, updated_at=event.timestamp)
