"""`crm relay run|status` and `crm stream tail`: the relay's sub-commands of the `crm` CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from domain.application import CRM
from infra.bootstrap import build_crm, managed_services
from infra.relay.config import relay_config
from infra.relay.relay import Relay
from infra.relay.runner import RelayRunner
from infra.relay.status import relay_status
from infra.relay.tail import Where, describe_message, tail
from infra.services import ServiceURLs
from infra.settings import Settings, get_settings

relay_app = typer.Typer(help="The relay that publishes every event to NATS JetStream.")
stream_app = typer.Typer(help="The JetStream stream integrators read (docs/integrators.md).")
console = Console()


@contextmanager
def in_process_relay(
    settings: Settings, crm: CRM, urls: ServiceURLs
) -> Iterator[RelayRunner | None]:
    """The relay in a background thread of this process (`crm run`), unless disabled."""
    if not settings.relay_enabled or settings.persistence != "postgres":
        yield None
        return
    relay = Relay(crm, urls.database_url, urls.nats_url, relay_config(settings))
    with RelayRunner(relay) as runner:
        yield runner


@relay_app.command("run")
def relay_run() -> None:
    """Publish every committed event until interrupted (one relay leads, others stand by)."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        runner = RelayRunner(Relay(crm, urls.database_url, urls.nats_url, relay_config(settings)))
        runner.start()
        console.print(f"relaying to {settings.relay_stream} at {urls.nats_url}; Ctrl-C stops")
        try:
            while runner.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            runner.stop()
            crm.close()
    if runner.crashed is not None:
        raise typer.Exit(code=1)


@relay_app.command("status")
def relay_status_command() -> None:
    """Tracking position, log head, lag (events and seconds), state and last error."""
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        try:
            status = relay_status(crm, settings.relay_stream)
        finally:
            crm.close()
    table = Table("stream", "position", "head", "lag", "lag ms", "published", "state", "error")
    lag_ms = "-" if status.lag_ms is None else f"{status.lag_ms:.0f}"
    table.add_row(
        status.stream,
        str(status.position),
        str(status.head),
        str(status.lag_events),
        lag_ms,
        str(status.published),
        status.state,
        status.error or "",
    )
    console.print(table)
    if not status.healthy:
        raise typer.Exit(code=1)


@stream_app.command("tail")
def stream_tail(
    subject: str | None = typer.Option(None, help="Subject filter, e.g. crm.ticket.> (all)."),
    from_seq: int | None = typer.Option(None, help="Start at this stream sequence."),
    from_time: str | None = typer.Option(None, help="Start at this time (ISO 8601)."),
    count: int | None = typer.Option(None, help="Stop after this many messages."),
    idle: float | None = typer.Option(None, help="Stop after this many seconds without one."),
    json: bool = typer.Option(False, "--json", help="Print each CloudEvent as one JSON line."),
) -> None:
    """Print the stream's messages as they arrive (only new ones unless told where to start)."""
    if from_seq is not None and from_time is not None:
        raise typer.BadParameter("give --from-seq or --from-time, not both")
    settings = get_settings()

    def show(seq: int, message_subject: str, payload: bytes) -> None:
        line = payload.decode() if json else describe_message(seq, message_subject, payload)
        typer.echo(line)

    with managed_services(settings) as urls:
        where = Where(from_seq=from_seq, from_time=_moment(from_time))
        try:
            asyncio.run(
                tail(
                    urls.nats_url,
                    settings.relay_stream,
                    subject or f"{settings.relay_subject_prefix}.>",
                    where,
                    show,
                    count=count,
                    idle_timeout=idle,
                )
            )
        except KeyboardInterrupt:
            pass


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
