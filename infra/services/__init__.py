"""Zero-setup PostgreSQL and NATS: embedded servers, health checks and the pair the CRM uses."""

from infra.services.databases import create_database, drop_database, with_database
from infra.services.health import check_nats, check_postgres
from infra.services.managed import ManagedServices, ServiceURLs
from infra.services.nats import EmbeddedNats, nats_server_binary
from infra.services.postgres import EmbeddedPostgres
from infra.services.status import ServiceError, ServiceStatus

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ManagedServices",
    "ServiceError",
    "ServiceStatus",
    "ServiceURLs",
    "check_nats",
    "check_postgres",
    "create_database",
    "drop_database",
    "nats_server_binary",
    "with_database",
]
