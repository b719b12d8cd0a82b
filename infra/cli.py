"""The `crm` command: run the CRM, manage its services and schema, read the audit trail."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import orjson
import typer
import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from api.security import ROLES
from domain.application import CRM
from infra.bootstrap import WORKER_API, build_crm, managed_services, running
from infra.persistence import migrate as migrate_schema
from infra.privacy.cli import privacy_app
from infra.projections import ProjectionSupervisor, projection_status, rebuild_many
from infra.relay.cli import in_process_relay, relay_app, stream_app
from infra.sagas import SagaSupervisor, saga_status
from infra.services import ServiceStatus
from infra.settings import get_settings
from infra.users import UserExists, UserStore, ensure_demo_admin
from projections.catalog import READ_MODELS, ReadModelSpec, read_model

app = typer.Typer(help="Event-sourced CRM backend.", no_args_is_help=True)
services_app = typer.Typer(help="Embedded PostgreSQL and NATS (used when no URL is set).")
app.add_typer(services_app, name="services")
projections_app = typer.Typer(help="Read models: run, inspect and rebuild them.")
app.add_typer(projections_app, name="projections")
users_app = typer.Typer(help="Users of the API: create, list, deactivate.")
app.add_typer(users_app, name="users")
sagas_app = typer.Typer(help="Sagas: the exactly-once handoffs between departments.")
app.add_typer(sagas_app, name="sagas")
app.add_typer(relay_app, name="relay")
app.add_typer(stream_app, name="stream")
app.add_typer(privacy_app, name="privacy")
console = Console()


@app.command()
def run(
    host: str | None = typer.Option(None, help="Interface to listen on (CRM_HOST)."),
    port: int | None = typer.Option(None, help="Port to listen on (CRM_PORT)."),
) -> None:
    """Set everything up (services, schema) and serve the API until interrupted."""
    settings = get_settings()
    with running(settings, run_migrations=True) as runtime:
        bind_host, bind_port = host or settings.host, port or settings.port
        console.print(f"[bold green]CRM API[/] http://{bind_host}:{bind_port}")
        console.print(f"  docs    http://{bind_host}:{bind_port}/docs")
        console.print(f"  health  http://{bind_host}:{bind_port}/health")
        console.print(f"  database {runtime.urls.database_url}")
        console.print(f"  nats     {runtime.urls.nats_url}")
        admin = runtime.settings.demo_admin_username
        if admin:
            password = ensure_demo_admin(
                UserStore(runtime.crm.recorder.datastore),  # type: ignore[attr-defined]
                runtime.settings.data_dir,
                admin,
                runtime.settings.demo_admin_password,
            )
            console.print(f"  login    [bold]{admin}[/] / [bold]{password}[/] (demo admin)")
        with (
            ProjectionSupervisor(runtime.crm, runtime.urls.database_url),
            SagaSupervisor(runtime.crm, runtime.urls.database_url),
            in_process_relay(settings, runtime.crm, runtime.urls),
        ):
            uvicorn.run(
                runtime.api,
                host=bind_host,
                port=bind_port,
                log_level=settings.log_level,
                access_log=settings.http_access_log,
            )


@app.command()
def api(
    host: str | None = typer.Option(None, help="Interface to listen on (CRM_HOST)."),
    port: int | None = typer.Option(None, help="Port to listen on (CRM_PORT)."),
    workers: int = typer.Option(
        1,
        min=1,
        help="Worker processes; each serves any request (records, idempotency answers and the "
        "access log live in PostgreSQL), but /metrics counts the requests of the worker asked.",
    ),
) -> None:
    """Serve the API only (production: run `crm migrate` once beforehand)."""
    settings = get_settings()
    with running(settings) as runtime:
        options: dict[str, Any] = {
            "host": host or settings.host,
            "port": port or settings.port,
            "log_level": settings.log_level,
            "access_log": settings.http_access_log,
        }
        if workers == 1:
            uvicorn.run(runtime.api, **options)
            return
        # The workers connect to the services found or started here (embedded ones included).
        os.environ["CRM_DATABASE_URL"] = runtime.urls.database_url
        os.environ["CRM_NATS_URL"] = runtime.urls.nats_url
        uvicorn.run(WORKER_API, factory=True, workers=workers, **options)


@app.command()
def migrate() -> None:
    """Create the event store's tables if they are missing (safe to run again)."""
    settings = get_settings()
    with managed_services(settings) as urls:
        tables = migrate_schema(settings, urls.database_url)
    console.print(f"schema ready: {', '.join(tables)}")


@app.command()
def history(record_id: UUID) -> None:
    """Print every event of one record, oldest first, as JSON lines (the audit trail)."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        try:
            for event in crm.history(record_id):
                line = {"type": event.type_name(), **event.model_dump(mode="json")}
                typer.echo(orjson.dumps(line).decode())
        finally:
            crm.close()


@users_app.command("create")
def users_create(
    username: str = typer.Option(..., help="Login name (letters, digits, . _ @ -)."),
    role: str = typer.Option(..., help=f"One of: {', '.join(ROLES)}."),
    region: str | None = typer.Option(None, help="Region (required for managers)."),
    team: str | None = typer.Option(None, help="Team (service and sales routing)."),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="CRM_NEW_USER_PASSWORD",
        help="Asked for when not given (or set CRM_NEW_USER_PASSWORD).",
    ),
    replace: bool = typer.Option(False, help="Reset an existing user instead of failing."),
) -> None:
    """Create a user who can log in to the API (passwords are stored as argon2 hashes)."""
    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    with _user_store() as store:
        try:
            user = store.create(username, password, role, region=region, team=team, replace=replace)
        except UserExists:
            console.print(f"[red]user {username} exists already[/] (use --replace to reset)")
            raise typer.Exit(code=1) from None
        except ValueError as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(code=1) from None
    console.print(f"user [bold]{user.username}[/] created: {user.role} region={user.region}")


@users_app.command("list")
def users_list() -> None:
    """List active users with their role, region and team."""
    table = Table("username", "role", "region", "team")
    with _user_store() as store:
        for user in store.list():
            table.add_row(user.username, user.role, user.region or "", user.team or "")
    console.print(table)


@users_app.command("deactivate")
def users_deactivate(username: str) -> None:
    """Stop a user from logging in (their history stays in the log)."""
    with _user_store() as store:
        if not store.deactivate(username):
            console.print(f"[red]no user {username}[/]")
            raise typer.Exit(code=1)
    console.print(f"user {username} deactivated")


@contextmanager
def _user_store() -> Iterator[UserStore]:
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        try:
            yield UserStore(crm.recorder.datastore)  # type: ignore[attr-defined]
        finally:
            crm.close()


@services_app.command("up")
def services_up() -> None:
    """Start the embedded servers (those without a configured URL) and leave them running."""
    urls = managed_services(get_settings()).start()
    console.print(f"database {urls.database_url}\nnats     {urls.nats_url}")


@services_app.command("down")
def services_down() -> None:
    """Stop the embedded servers."""
    managed_services(get_settings()).stop_embedded()
    console.print("embedded services stopped")


@services_app.command("status")
def services_status() -> None:
    """Show whether each service answers, where, and its version or error."""
    statuses = managed_services(get_settings()).status()
    console.print(_status_table(statuses))
    if not all(s.running for s in statuses):
        raise typer.Exit(code=1)


@projections_app.command("run")
def projections_run() -> None:
    """Keep every read model up to date until interrupted (one leader per read model)."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        supervisor = ProjectionSupervisor(crm, urls.database_url)
        supervisor.start()
        console.print(f"projecting {', '.join(s.name for s in READ_MODELS)}; Ctrl-C stops")
        try:
            while any(worker.is_alive() for worker in supervisor.workers):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            supervisor.stop()
            crm.close()


@projections_app.command("status")
def projections_status() -> None:
    """Per read model: version, position, log head, lag (events and ms), state."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        try:
            statuses = projection_status(crm)
        finally:
            crm.close()
    table = Table("version", "position", "head", "lag", "lag ms", "state", "error")
    table.columns.insert(0, Column("read model", no_wrap=True))  # names must stay greppable
    for s in statuses:
        lag_ms = "-" if s.lag_ms is None else f"{s.lag_ms:.0f}"
        table.add_row(
            s.name,
            str(s.version or "-"),
            str(s.position),
            str(s.head),
            str(s.lag_events),
            lag_ms,
            s.state,
            s.error or "",
        )
    console.print(table)


@projections_app.command("rebuild")
def projections_rebuild(
    name: str | None = typer.Argument(None, help="Read model to rebuild."),
    all_: bool = typer.Option(False, "--all", help="Rebuild every read model."),
) -> None:
    """Rebuild from position zero beside the serving version, then switch readers to it."""
    if (name is None) == (not all_):
        raise typer.BadParameter("name one read model, or pass --all")
    try:
        specs = list(READ_MODELS) if all_ else [read_model(name or "")]
    except KeyError as error:
        raise typer.BadParameter(str(error)) from None
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        try:
            _rebuild_with_progress(crm, specs)
        finally:
            crm.close()


def _rebuild_with_progress(crm: CRM, specs: list[ReadModelSpec]) -> None:
    """One pass over the log builds them all; each is switched to its new version at the end."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(", ".join(s.name for s in specs), total=None, rate="-")
        started = time.monotonic()

        def advance(position: int, head: int, applied: int) -> None:
            rate = applied / max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=position, total=head, rate=f"{rate:,.0f}")

        versions = rebuild_many(crm, specs, on_batch=advance)
    for name, version in versions.items():
        console.print(f"{name}: now serving version {version}")


@sagas_app.command("run")
def sagas_run() -> None:
    """Run every saga until interrupted (one active instance per saga, others stand by)."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        supervisor = SagaSupervisor(crm, urls.database_url)
        supervisor.start()
        names = ", ".join(worker.runner.saga.name for worker in supervisor.workers)
        console.print(f"running sagas {names}; Ctrl-C stops")
        try:
            while any(worker.is_alive() for worker in supervisor.workers):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            supervisor.stop()
            crm.close()


@sagas_app.command("status")
def sagas_status() -> None:
    """Per saga: its position in the log, the log's head, the events still waiting for it, its
    state (running, catching up, restarting after error, stopped with error, not running) and
    the event a failing saga is stuck at."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        try:
            statuses = saga_status(crm)
        finally:
            crm.close()
    table = Table("position", "head", "pending", "state", "failed at", "error")
    table.columns.insert(0, Column("saga", no_wrap=True))  # names must stay greppable
    for s in statuses:
        table.add_row(
            s.name,
            str(s.position),
            str(s.head),
            str(s.pending),
            s.state,
            "-" if s.failed_position is None else str(s.failed_position),
            s.error or "",
        )
    console.print(table)


def _status_table(statuses: list[ServiceStatus]) -> Table:
    table = Table("service", "state", "url", "pid", "detail")
    for status in statuses:
        state = "[green]up[/]" if status.running else "[red]down[/]"
        table.add_row(status.name, state, status.url or "-", str(status.pid or "-"), status.detail)
    return table


def main() -> None:
    app()


if __name__ == "__main__":
    main()
