"""What every read model shares: versioned tables, exactly-once batches, stable reader views."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.shared import DomainEvent

APPLICATION_NAME = "CRM"  # the application whose log every read model follows
EVENTS_TABLE = f"{APPLICATION_NAME.lower()}_events"  # its log (the library's name for it)
REGISTRY_TABLE = "crm_read_models"

Row = dict[str, Any]
E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[Any, Cursor[DictRow], Any], None]
H = TypeVar("H", bound=Callable[..., None])  # a live handler, or a rebuild's in-memory one


class ReadModelView(PostgresTrackingRecorder):
    """Tables of one version of a read model, plus its tracking table, in one database.

    Subclasses declare `tables` (logical name -> the column definitions of CREATE TABLE) and
    `indexes` (logical name -> index column lists). Version N of table `deals` of read model
    `sales_funnel` is `rm_sales_funnel_vN_deals`; readers query the view
    `rm_sales_funnel_deals`, which `activate()` points at the active version atomically.

    `schema` is the revision of `tables` and `indexes`: bump it when they change. Versions are
    built with the schema of the code that built them, so a changed schema takes a rebuild (a
    new version, blue/green); until then live writers refuse the old one (`SchemaOutdated`).
    """

    name: ClassVar[str] = ""
    tables: ClassVar[dict[str, str]] = {}
    indexes: ClassVar[dict[str, list[str]]] = {}
    schema: ClassVar[int] = 1
    # The log types its projection handles (the catalog sets them). Known, they let a wait for
    # a position end as soon as none of them lies between the recorded position and it: live
    # workers record positions past other types' events only now and then.
    topics: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, datastore: PostgresDatastore, version: int = 1) -> None:
        self.version = version
        super().__init__(datastore, tracking_table_name=self.physical("tracking"))
        self.index_statements: list[Composed] = []
        for logical, columns in self.tables.items():
            self.sql_create_statements.append(
                SQL("CREATE TABLE IF NOT EXISTS {} (" + columns + ")").format(self.table(logical))
            )
            for n, index_columns in enumerate(self.indexes.get(logical, [])):
                self.index_statements.append(
                    SQL("CREATE INDEX IF NOT EXISTS {} ON {} (" + index_columns + ")").format(
                        Identifier(self.physical(f"{logical}_ix{n}")), self.table(logical)
                    )
                )

    def create_table(self, *, indexes: bool = True) -> None:
        """Create this version's tables (if missing), and their indexes unless told not to.

        A rebuild creates the indexes (`create_indexes`) once its rows are in: building an
        index over all rows at once costs the database far less than updating it row by row.
        """
        super().create_table()
        if indexes:
            self.create_indexes()

    def create_indexes(self) -> None:
        """Create the indexes of this version's tables (if missing)."""
        with self.datastore.transaction(commit=True) as curs:
            for statement in self.index_statements:
                curs.execute(statement, prepare=False)

    def analyze(self) -> None:
        """Give the planner statistics of this version's tables (a rebuild calls it before the
        switch: without them, until autovacuum comes by, queries are planned for empty tables)."""
        with self.datastore.transaction(commit=True) as curs:
            for logical in self.tables:
                curs.execute(SQL("ANALYZE {}").format(self.table(logical)), prepare=False)

    # --- names ----------------------------------------------------------------------------------

    def physical(self, logical: str, version: int | None = None) -> str:
        return f"rm_{self.name}_v{self.version if version is None else version}_{logical}"

    def table(self, logical: str) -> Identifier:
        """The physical table of this version (for writers)."""
        return Identifier(self.physical(logical))

    @classmethod
    def reader(cls, logical: str) -> Identifier:
        """The stable view readers query, whatever version is active."""
        return Identifier(f"rm_{cls.name}_{logical}")

    # --- writing --------------------------------------------------------------------------------

    def write_batch(
        self,
        projection: ReadModelProjection,
        events: Sequence[DomainEvent],
        position: int,
        *,
        start: int,
        live: bool = True,
        positions: Sequence[int] = (),
    ) -> None:
        """Apply the events after `start` up to `position`, and record `position`, in one
        transaction (exactly once). `positions` are the events' log positions, which handlers
        read as `self.position` (e.g. to order a timeline the same way in every rebuild).

        The tracking row is locked and must still say `start`: a second writer (a leader that
        lost its lock without noticing) can never apply the same events again. A live writer
        also takes a share lock on the registry row and checks its version is still the active
        one, so a rebuild's switch waits for it and it never writes to a switched-away version.
        """
        with self.datastore.transaction(commit=True) as curs:
            self._claim(curs, start, live=live)
            # Pipelined: the handlers' statements go out without waiting for each result
            # (a handler that reads a result waits only then), so a batch is a few round trips.
            with curs.connection.pipeline():
                for n, event in enumerate(events):
                    projection.position = positions[n] if positions else position
                    projection.apply(event, curs)
                self._insert_tracking(curs, Tracking(APPLICATION_NAME, position))

    def advance(self, position: int, *, start: int, live: bool = True) -> None:
        """Record that the events after `start` up to `position` hold nothing for this read
        model: `write_batch` without events, with the same checks.

        The commit does not wait for the disk (`synchronous_commit = off`): no row depends on
        it, so a crash that loses it only means those events are looked through again.
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SET LOCAL synchronous_commit = off")
            self._claim(curs, start, live=live)
            self._insert_tracking(curs, Tracking(APPLICATION_NAME, position))

    def write_rows(
        self, write: Callable[[Cursor[DictRow]], None], position: int, *, start: int
    ) -> None:
        """A rebuild's `write_batch`: `write` stores rows (e.g. with COPY), and `position` is
        recorded, in one transaction, after the same check that the tracking row says `start`."""
        with self.datastore.transaction(commit=True) as curs:
            self._claim(curs, start, live=False)
            write(curs)
            self._insert_tracking(curs, Tracking(APPLICATION_NAME, position))

    def _claim(self, curs: Cursor[DictRow], start: int, *, live: bool) -> None:
        """Lock the tracking row (and, live, the registry row); refuse if either moved on."""
        if live:
            self.check_active(curs, lock=True)
        tracking = self.table("tracking")
        curs.execute(
            SQL(
                "INSERT INTO {} (application_name, notification_id) VALUES (%s, 0) "
                "ON CONFLICT DO NOTHING"
            ).format(tracking),
            (APPLICATION_NAME,),
        )
        curs.execute(
            SQL("SELECT notification_id FROM {} WHERE application_name = %s FOR UPDATE").format(
                tracking
            ),
            (APPLICATION_NAME,),
        )
        row = curs.fetchone()
        if row is None or row["notification_id"] != start:
            raise PositionMoved(self.name, start)

    def check_active(self, curs: Cursor[DictRow], *, lock: bool = False) -> None:
        """Refuse (`ReadModelMoved`) unless this version is the active one, built with this
        code's schema; `lock`: share-lock the registry row, so a switch waits for the caller."""
        curs.execute(
            SQL(
                "SELECT active_version, coalesce(schema_revision, 1) AS schema FROM {} "
                "WHERE name = %s" + (" FOR SHARE" if lock else "")
            ).format(Identifier(REGISTRY_TABLE)),
            (self.name,),
        )
        row = curs.fetchone()
        if row is None or row["active_version"] != self.version:
            raise VersionSwitched(self.name, self.version)
        if row["schema"] != self.schema:
            raise SchemaOutdated(self.name, self.version, row["schema"], self.schema)

    def position(self) -> int:
        """The last log position this version has processed (0 before the first)."""
        return self.max_tracking_id(APPLICATION_NAME) or 0

    # --- versions -------------------------------------------------------------------------------

    def activate(self) -> None:
        """Point the readers' views at this version and record it as active, atomically."""
        with self.datastore.transaction(commit=True) as curs:
            for logical in [*self.tables, "tracking"]:
                curs.execute(SQL("DROP VIEW IF EXISTS {}").format(self.reader(logical)))
                curs.execute(
                    SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                        self.reader(logical), self.table(logical)
                    )
                )
            curs.execute(
                SQL(
                    "INSERT INTO {} (name, active_version, schema_revision) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET active_version = EXCLUDED.active_version, "
                    "schema_revision = EXCLUDED.schema_revision"
                ).format(Identifier(REGISTRY_TABLE)),
                (self.name, self.version, self.schema),
            )

    def drop(self) -> None:
        """Drop this version's tables; refuses to drop the active version."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("SELECT active_version FROM {} WHERE name = %s FOR UPDATE").format(
                    Identifier(REGISTRY_TABLE)
                ),
                (self.name,),
            )
            row = curs.fetchone()
            if row is not None and row["active_version"] == self.version:
                raise ActiveVersionNotDropped(self.name, self.version)
            for logical in [*self.tables, "tracking"]:
                curs.execute(SQL("DROP TABLE IF EXISTS {} CASCADE").format(self.table(logical)))

    # --- reading --------------------------------------------------------------------------------

    def wait_for(self, min_position: int | None, timeout: float = 5.0) -> None:
        """Block until the active version has processed `min_position` (read-your-writes): it
        has recorded that position, or none of its types' events lies between the position it
        recorded and that one."""
        if not min_position:
            return
        deadline = time.monotonic() + timeout
        statement, params = self._caught_up(min_position)
        delay = 0.005
        while True:
            rows = self.fetch(statement, params)
            if rows and rows[0]["done"]:
                return
            if time.monotonic() >= deadline:
                raise ReadModelNotCaughtUp(self.name, min_position)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _caught_up(self, min_position: int) -> tuple[Composed, tuple[Any, ...]]:
        """The statement (and parameters) of `wait_for`'s one check."""
        done = "notification_id >= %s"
        params: tuple[Any, ...] = (min_position,)
        if self.topics is not None:
            done += (
                " OR NOT EXISTS (SELECT FROM {events} WHERE notification_id > t.notification_id "
                "AND notification_id <= %s AND topic = ANY(%s))"
            )
            params += (min_position, list(self.topics))
        statement = SQL(
            "SELECT " + done + " AS done FROM {tracking} t WHERE application_name = %s"
        ).format(events=Identifier(EVENTS_TABLE), tracking=self.reader("tracking"))
        return statement, (*params, APPLICATION_NAME)

    def fetch(self, statement: Composed | SQL, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query on the readers' views and return its rows as dicts."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return list(curs.fetchall())


class ReadModelProjection(Projection[Any]):
    """Turns events into rows of its view; unknown event types are skipped (position advances)."""

    handlers: ClassVar[dict[type[DomainEvent], Handler]] = {}
    position: int = 0  # log position of the event being applied
    # The in-memory rebuild of this read model (`projections.bulk`), if it has one; without
    # one, a rebuild runs the handlers above, page by page.
    bulk: ClassVar[type[Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Along the MRO, base first, so shared handler mixins count and subclasses override.
        cls.handlers = {
            event_type: method
            for klass in reversed(cls.__mro__)
            for method in vars(klass).values()
            for event_type in getattr(method, "_handles", ())
        }
        # Every stored version of each type: old payloads are upcast when read.
        cls.topics = tuple(
            sorted(f"{t.TYPE}.v{v}" for t in cls.handlers for v in range(1, t.class_version + 1))
        )

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """The library's one-event entry point: a batch of one."""
        self.view.write_batch(
            self,
            [domain_event],
            tracking.notification_id,
            start=self.view.position(),
            positions=[tracking.notification_id],
        )

    def apply(self, event: DomainEvent, curs: Cursor[DictRow]) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(self, curs, event)


def handles(*event_types: type[DomainEvent]) -> Callable[[H], H]:
    """Mark a projection method as the handler of these event types."""

    def mark(method: H) -> H:
        method._handles = event_types  # type: ignore[attr-defined]
        return method

    return mark


def create_registry(datastore: PostgresDatastore) -> None:
    """The table naming each read model's active version (created by `crm migrate`)."""
    with datastore.transaction(commit=True) as curs:
        curs.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "name text PRIMARY KEY, active_version int NOT NULL, "
                "building_version int, state text NOT NULL DEFAULT 'idle', error text, "
                "worker text, heartbeat_at timestamptz)"
            ).format(Identifier(REGISTRY_TABLE))
        )
        # The schema revision the active version was built with (none: 1, the first); added
        # to registries made before it, only then (ALTER locks the table even when it is a no-op).
        curs.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'schema_revision' AND NOT attisdropped",
            (REGISTRY_TABLE,),
        )
        if curs.fetchone() is None:
            curs.execute(
                SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS schema_revision int").format(
                    Identifier(REGISTRY_TABLE)
                )
            )


def active_version(datastore: PostgresDatastore, name: str) -> int | None:
    """The version readers see, or None before the read model is installed."""
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(
            SQL("SELECT active_version FROM {} WHERE name = %s").format(Identifier(REGISTRY_TABLE)),
            (name,),
        )
        row = curs.fetchone()
        return None if row is None else int(row["active_version"])


def install(view_class: type[ReadModelView], datastore: PostgresDatastore) -> ReadModelView:
    """The active version of a read model, creating version 1 on first use (idempotent)."""
    version = active_version(datastore, view_class.name)
    view = view_class(datastore, version or 1)
    if version is None:
        view.create_table()
        view.activate()
    return view


class ReadModelMoved(Exception):
    """The read model moved on without this writer; reload it and carry on."""


class VersionSwitched(ReadModelMoved):
    """A rebuild made another version of the read model active."""

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"Read model {name} v{version} is no longer the active version")


class PositionMoved(ReadModelMoved):
    """Another writer recorded a position this writer did not start from."""

    def __init__(self, name: str, start: int) -> None:
        super().__init__(f"Read model {name} is no longer at position {start}")


class SchemaOutdated(Exception):
    """The active version was built with another schema than this code's: rebuild it."""

    def __init__(self, name: str, version: int, built: int, wanted: int) -> None:
        super().__init__(
            f"Read model {name} v{version} has schema {built}, this code needs {wanted}: "
            f"rebuild it (crm projections rebuild {name})"
        )


class ActiveVersionNotDropped(Exception):
    """Dropping the version readers are using was refused."""

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"Read model {name} v{version} is active; it is not dropped")


class ReadModelNotCaughtUp(Exception):
    """The read model had not processed the caller's write within the wait."""

    def __init__(self, name: str, min_position: int) -> None:
        super().__init__(f"Read model {name} has not reached position {min_position} yet")
        self.name = name
        self.min_position = min_position
