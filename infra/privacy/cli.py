"""`crm privacy erase|export`: the data-subject rights from the command line (as in the API)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from uuid import UUID

import orjson
import typer

from api import privacy
from api.ports import AccessEntry
from api.services import ApiServices
from domain.shared import DomainError, command_context
from infra.bootstrap import api_services, build_crm, managed_services
from infra.settings import get_settings

privacy_app = typer.Typer(help="Personal data: erase a data subject, export what we hold.")


@contextmanager
def _services() -> Iterator[ApiServices]:
    settings = get_settings()
    with managed_services(settings) as urls:
        crm = build_crm(settings, urls.database_url)
        services = api_services(settings, crm)
        try:
            yield services
        finally:
            services.access_log.close()
            crm.close()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@privacy_app.command("erase")
def erase(
    reason: Annotated[str, typer.Option(help="Why (e.g. the data subject request's reference).")],
    customer: Annotated[UUID | None, typer.Option(help="The customer to erase.")] = None,
    lead: Annotated[UUID | None, typer.Option(help="The lead to erase.")] = None,
) -> None:
    """Erase a customer's or a lead's personal data for good (destroys their keys)."""
    if (customer is None) == (lead is None):
        raise typer.BadParameter("give exactly one of --customer and --lead")
    with _services() as services, command_context(actor=_actor()):
        try:
            if customer is not None:
                result = privacy.erase_customer(
                    services.crm, services.read_models, services.access_log, customer, reason=reason
                )
            else:
                assert lead is not None
                result = privacy.erase_lead(services.crm, services.access_log, lead, reason=reason)
        except DomainError as error:
            typer.echo(f"refused: {error.detail}", err=True)
            raise typer.Exit(1) from error
    typer.echo(f"erased {result.id} (version {result.version}, position {result.position})")


@privacy_app.command("export")
def export(
    customer: Annotated[UUID, typer.Option(help="The customer whose data to export.")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON here, not to stdout.")] = None,
) -> None:
    """Everything held about a customer as one JSON document (recorded in the access log)."""
    with _services() as services:
        document = services.read_models.customers.customer(customer)
        if document is None:
            typer.echo(f"no customer {customer} in the read models", err=True)
            raise typer.Exit(1)
        services.access_log.record(
            AccessEntry(
                username=_actor(),
                role="admin",
                action="privacy.export",
                record_kind="customer",
                record_id=customer,
                at=datetime.now(UTC),
                ip=None,
                user_agent="crm privacy export",
            )
        )
        data = orjson.dumps(
            privacy.export_customer(
                services.crm, services.read_models, services.access_log, document
            ),
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
        )
    if out is None:
        typer.echo(data.decode())
    else:
        out.touch(mode=0o600)  # personal data: readable by its owner only
        out.write_bytes(data)
        typer.echo(f"wrote {out}")
