"""The PostgreSQL and NATS the CRM uses: external ones when given, embedded ones otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from infra.services.health import check_nats, check_postgres
from infra.services.nats import EmbeddedNats
from infra.services.postgres import EmbeddedPostgres
from infra.services.status import ServiceStatus


@dataclass(frozen=True)
class ServiceURLs:
    """Where the CRM finds its database and its message broker."""

    database_url: str
    nats_url: str


class ManagedServices:
    """Finds or starts the CRM's services and stops, on request, only those it started."""

    def __init__(
        self,
        base_dir: Path = Path(".crm"),
        *,
        database_url: str | None = None,
        nats_url: str | None = None,
        database: str = "crm",
        fsync: bool = True,
    ) -> None:
        self.external_database_url = database_url
        self.external_nats_url = nats_url
        self.database = database
        self.postgres = EmbeddedPostgres(base_dir / "pg", fsync=fsync)
        self.nats = EmbeddedNats(base_dir / "nats" / "store", run_dir=base_dir / "nats")
        self._started: set[str] = set()

    @property
    def started(self) -> frozenset[str]:
        """Names of the embedded servers this object launched (not those it found running)."""
        return frozenset(self._started)

    def start(self) -> ServiceURLs:
        """The URLs to use, starting an embedded server for each service without a URL."""
        try:
            return ServiceURLs(database_url=self.database_url(), nats_url=self.nats_url())
        except BaseException:
            self.stop_started()
            raise

    def database_url(self) -> str:
        """The external database URL, or the embedded server's `database`, started if needed."""
        if self.external_database_url is not None:
            return self.external_database_url
        url = self.postgres.ensure_database(self.database)
        if self.postgres.launched:
            self._started.add("postgres")
        return url

    def nats_url(self) -> str:
        """The external NATS URL, or the embedded server's, started if needed."""
        if self.external_nats_url is not None:
            return self.external_nats_url
        url = self.nats.start()
        if self.nats.launched:
            self._started.add("nats")
        return url

    def stop_started(self) -> None:
        """Stop the embedded servers this object launched, leaving any it merely reused."""
        if "nats" in self._started:
            self.nats.stop()
        if "postgres" in self._started:
            self.postgres.stop()
        self._started.clear()

    def stop_embedded(self) -> None:
        """Stop both embedded servers, whoever started them (`crm services down`)."""
        self.nats.stop()
        self.postgres.stop()
        self._started.clear()

    def status(self) -> list[ServiceStatus]:
        """A health report for each service, external or embedded."""
        if self.external_database_url is not None:
            postgres = check_postgres(self.external_database_url)
        else:
            postgres = self.postgres.status()
        if self.external_nats_url is not None:
            nats = check_nats(self.external_nats_url)
        else:
            nats = self.nats.status()
        return [postgres, nats]

    def __enter__(self) -> ServiceURLs:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_started()
