"""Rebuilding a read model in memory: its rows live in dicts while the log is replayed.

A read model opts in with a `BulkRebuild` subclass whose `@handles` methods take `(self, event)`
and change in-memory rows the way the live handlers' SQL changes table rows. A rebuild then costs
no statement per event: append-only tables (a timeline) are streamed with COPY after every page,
and the other tables are written once, with COPY, in the transaction that records the position.
Memory grows with the number of records (customers, leads, deals, tickets), not of events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any, ClassVar

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from domain.shared import DomainEvent
from projections.readmodel import ReadModelProjection, ReadModelView, Row

BulkHandler = Callable[[Any, Any], None]


class Table:
    """The rows of one table, by primary key, as the live handlers' statements would leave them."""

    def __init__(self, name: str, columns: tuple[str, ...]) -> None:
        self.name = name
        self.columns = columns
        self.known = frozenset(columns)
        self.rows: dict[Any, Row] = {}

    def get(self, key: Any) -> Row | None:
        return self.rows.get(key)

    def add(self, key: Any, **values: Any) -> Row:
        """INSERT: a second row with the same key is an error, as in the database."""
        if key in self.rows:
            raise DuplicateRow(self.name, key)
        return self._new(key, values)

    def add_new(self, key: Any, **values: Any) -> Row | None:
        """INSERT ... ON CONFLICT DO NOTHING: the new row, or None if the key was taken."""
        return None if key in self.rows else self._new(key, values)

    def put(self, key: Any, **values: Any) -> Row:
        """INSERT ... ON CONFLICT DO UPDATE of every given column."""
        row = self.rows.get(key)
        if row is None:
            return self._new(key, values)
        self._check(values)
        row.update(values)
        return row

    def set(self, key: Any, **values: Any) -> Row | None:
        """UPDATE ... WHERE key: the changed row, or None if there is none."""
        row = self.rows.get(key)
        if row is not None:
            self._check(values)
            row.update(values)
        return row

    def delete(self, key: Any) -> Row | None:
        return self.rows.pop(key, None)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows.values())

    def __len__(self) -> int:
        return len(self.rows)

    def _new(self, key: Any, values: dict[str, Any]) -> Row:
        self._check(values)
        row = dict.fromkeys(self.columns)
        row.update(values)
        self.rows[key] = row
        return row

    def _check(self, values: dict[str, Any]) -> None:
        if not self.known.issuperset(values):  # the database would refuse the statement
            raise UnknownColumns(self.name, sorted(values.keys() - self.known))


class Stream:
    """Rows that are only ever appended (a timeline): written after every page, never kept."""

    def __init__(self, name: str, columns: tuple[str, ...]) -> None:
        self.name = name
        self.columns = columns
        self.pending: list[tuple[Any, ...]] = []
        self._values = values_of(columns)

    def append(self, row: Row) -> None:
        """Append a row that has a value for every column."""
        self.pending.append(self._values(row))


class BulkRebuild:
    """Builds one read model's rows in memory from the whole log; see the module docstring.

    `streams` names the append-only tables; every other table of the view is a `Table`.
    `class XRebuild(BulkRebuild, rebuilds=XProjection)` makes rebuilds of X use this class.
    """

    handlers: ClassVar[dict[type[DomainEvent], BulkHandler]] = {}
    streams: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(
        cls, rebuilds: type[ReadModelProjection] | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {
            event_type: method
            for klass in reversed(cls.__mro__)
            for method in vars(klass).values()
            for event_type in getattr(method, "_handles", ())
        }
        if rebuilds is not None:
            rebuilds.bulk = cls

    def __init__(self, view: ReadModelView, columns: dict[str, tuple[str, ...]]) -> None:
        self.view = view
        self.position = 0  # log position of the event being applied
        self.tables = {
            name: Table(name, cols) for name, cols in columns.items() if name not in self.streams
        }
        self.stream_of = {name: Stream(name, columns[name]) for name in self.streams}

    @classmethod
    def for_view(cls, view: ReadModelView) -> BulkRebuild:
        """A rebuild of `view`, an empty version whose tables exist (columns come from them)."""
        return cls(view, table_columns(view))

    def apply(self, event: DomainEvent, position: int) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            self.position = position
            handler(self, event)

    def take(self) -> Callable[[Cursor[DictRow]], None]:
        """Hand over the rows appended to the streams so far: the function COPYs them."""
        taken = [(stream, stream.pending) for stream in self.stream_of.values() if stream.pending]
        for stream, _ in taken:
            stream.pending = []

        def write(curs: Cursor[DictRow]) -> None:
            for stream, rows in taken:
                copy_rows(curs, self.view, stream.name, stream.columns, rows)

        return write

    def flush(self, curs: Cursor[DictRow]) -> None:
        """COPY the rows appended to the streams since the last flush."""
        self.take()(curs)

    def finish(self, curs: Cursor[DictRow]) -> None:
        """COPY every table's rows (and what the streams still hold)."""
        self.flush(curs)
        for table in self.tables.values():
            values = values_of(table.columns)
            copy_rows(curs, self.view, table.name, table.columns, map(values, table))


def values_of(columns: tuple[str, ...]) -> Callable[[Row], tuple[Any, ...]]:
    """A row's values in the order of `columns`, as a tuple (fast: it runs for every row)."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return itemgetter(*columns)


def copy_rows(
    curs: Cursor[DictRow],
    view: ReadModelView,
    table: str,
    columns: tuple[str, ...],
    rows: Any,
) -> None:
    """COPY `rows` (sequences in the order of `columns`) into this version's `table`."""
    statement = SQL("COPY {} ({}) FROM STDIN").format(
        view.table(table), SQL(", ").join(map(Identifier, columns))
    )
    with curs.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def table_columns(view: ReadModelView) -> dict[str, tuple[str, ...]]:
    """The columns a row of each of the view's tables is written with (generated ones left out)."""
    columns: dict[str, tuple[str, ...]] = {}
    with view.datastore.get_connection() as conn, conn.cursor() as curs:
        for logical in view.tables:
            curs.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                (view.table(logical).as_string(conn),),
            )
            columns[logical] = tuple(row["attname"] for row in curs.fetchall())
    return columns


class DuplicateRow(Exception):
    """A rebuild inserted a row whose key was taken (the live INSERT would fail the same way)."""

    def __init__(self, table: str, key: Any) -> None:
        super().__init__(f"duplicate key {key!r} in {table}")


class UnknownColumns(Exception):
    """A rebuild set columns the table does not have (the live UPDATE would fail the same way)."""

    def __init__(self, table: str, columns: list[str]) -> None:
        super().__init__(f"{table} has no columns {', '.join(columns)}")
