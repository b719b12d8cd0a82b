"""Data-subject rights: erase a customer's or a lead's personal data, export what we hold.

Erasure destroys the subject's keys in the transaction that records the erasure event (see
docs/privacy.md): the log, snapshots, backups and replays can no longer read the data, read
models redact it as they apply the event, and search terms naming the person are scrubbed from
the access log. Export gathers the events, read-model rows, consents and access-log entries
about the customer into one document, and is itself written to the access log.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api import privacy
from api.access import mask_document
from api.commands import CommanderDep, CommandPublic, reply
from api.deps import (
    AccessLogDep,
    CRMDep,
    CurrentUser,
    MinPosition,
    ReadModelsDep,
    RecordAccess,
    allow,
)
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from api.schemas.customers import NO_NUL
from domain.shared import NotFound
from projections.visibility import Visibility

router = APIRouter(tags=["privacy"])

Erasing = Annotated[Visibility, allow("privacy", "write")]
Exporting = Annotated[Visibility, allow("privacy", "read")]


class ErasureRequest(BaseModel):
    """Why the personal data is erased (a request by the data subject, a retention rule...)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "Data subject request #2026-114"}]},
    )

    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL)


class SubjectExport(BaseModel):
    """Everything held about one customer: read models, events, consents, access log."""

    model_config = ConfigDict(extra="allow")

    customer_id: UUID
    customer: dict[str, Any]
    consents: dict[str, Any]
    timeline: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    access_log: list[dict[str, Any]]


@router.post(
    "/customers/{customer_id}/erasure", response_model=CommandPublic, responses=COMMAND_PROBLEMS
)
def erase_customer(
    customer_id: UUID,
    body: ErasureRequest,
    response: Response,
    commands: CommanderDep,
    read_models: ReadModelsDep,
    access_log: AccessLogDep,
    visible: Erasing,
) -> CommandPublic:
    """Erase the customer's personal data for good (GDPR art. 17 / PIPL art. 47).

    Also erased: the personal data of the customer's tickets, of the leads converted into them,
    of duplicates merged into them, and of tasks about any of these. Amounts, stages and SLA
    figures stay. Repeating an erasure changes nothing.
    """
    commands.customer(customer_id, visible)
    result = commands.run(
        privacy.erase_customer,
        commands.crm,
        read_models,
        access_log,
        customer_id,
        reason=body.reason,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/leads/{lead_id}/erasure", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def erase_lead(
    lead_id: UUID,
    body: ErasureRequest,
    response: Response,
    commands: CommanderDep,
    access_log: AccessLogDep,
    visible: Erasing,
) -> CommandPublic:
    """Erase the lead's personal data for good; its channel, campaign and outcome stay."""
    commands.lead(lead_id, visible)
    result = commands.run(
        privacy.erase_lead,
        commands.crm,
        access_log,
        lead_id,
        reason=body.reason,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.get(
    "/customers/{customer_id}/export", response_model=SubjectExport, responses=QUERY_PROBLEMS
)
def export_customer(
    customer_id: UUID,
    crm: CRMDep,
    read_models: ReadModelsDep,
    access_log: AccessLogDep,
    user: CurrentUser,
    visible: Exporting,
    record_access: RecordAccess,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Everything held about the customer, as one JSON document (GDPR art. 15 / PIPL art. 45)."""
    document = read_models.customers.customer(customer_id, min_position=min_position)
    if document is None or not visible.admits(region=document["region"], owner=document["owner"]):
        raise NotFound("customer", customer_id)
    record_access("privacy.export", "customer", customer_id)
    masked: dict[str, Any] = mask_document(
        user, privacy.export_customer(crm, read_models, access_log, document)
    )
    return masked
