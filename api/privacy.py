"""Data-subject rights as use cases over the CRM, its read models and the access log.

Shared by the HTTP routes (api/routes/privacy.py) and the CLI (`crm privacy ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from api.ports import AccessLog
from api.services import ReadModels
from domain.application import CRM
from domain.application.commands import CommandResult
from domain.customer import Customer
from domain.lead import Lead
from projections.event_log import record_log

PAGE = 200


def customer_values(customer: Customer) -> list[str]:
    """The person's own values (to scrub search terms that named them from the access log)."""
    values = [customer.name, customer.email, customer.phone]
    for contact in customer.contacts.values():
        values += [contact.name, contact.email, contact.phone]
    return [value for value in values if value]


def erase_customer(
    crm: CRM,
    read_models: ReadModels,
    access_log: AccessLog,
    customer_id: UUID,
    *,
    reason: str,
    expected_version: int | None = None,
) -> CommandResult:
    """Erase the customer, their tickets, converted leads and merged duplicates' personal data.

    Tasks about any of these go too (their data subject is one of them). Search terms that
    named the person are scrubbed from the access log afterwards.
    """
    customer = crm.state_at(Customer, customer_id)
    records = [*customer.absorbed_ids, *read_models.customers.erasure_records(customer_id)]
    result = crm.erase_customer(
        customer_id,
        reason=reason,
        records=sorted(set(records)),
        expected_version=expected_version,
    )
    access_log.scrub(customer_values(customer))
    return result


def erase_lead(
    crm: CRM,
    access_log: AccessLog,
    lead_id: UUID,
    *,
    reason: str,
    expected_version: int | None = None,
) -> CommandResult:
    """Erase the lead's personal data; its channel, campaign, score and outcome stay."""
    lead = crm.state_at(Lead, lead_id)
    result = crm.erase_lead(lead_id, reason=reason, expected_version=expected_version)
    access_log.scrub([value for value in (lead.name, lead.email, lead.phone) if value])
    return result


def export_customer(
    crm: CRM, read_models: ReadModels, access_log: AccessLog, document: dict[str, Any]
) -> dict[str, Any]:
    """Everything held about the customer whose 360° `document` this is, as one document:
    the 360° view, the whole timeline, the tasks about them, every event of the customer and its
    related records (merged duplicates, tickets, converted leads, tasks) with payloads, and the
    access log about them."""
    customer_id: UUID = document["customer_id"]
    records = list(
        dict.fromkeys(
            [
                customer_id,
                *(document.get("merged_ids") or []),
                *read_models.customers.erasure_records(customer_id),
            ]
        )
    )
    tasks = read_models.tasks.about(records)
    events = {
        str(record_id): [e.envelope() for e in record_log(crm.recorder, crm.mapper, record_id)]
        for record_id in [*records, *(task["task_id"] for task in tasks)]
    }
    logged = [row for record_id in records for row in access_log_about(access_log, record_id)]
    timeline = every_page(
        lambda cursor: read_models.customers.timeline(customer_id, limit=PAGE, cursor=cursor)
    )
    return {
        "customer_id": customer_id,
        "customer": document,
        "consents": document.get("consents", {}),
        "timeline": timeline,
        "tasks": tasks,
        "events": events,
        "access_log": logged,
    }


def access_log_about(access_log: AccessLog, record_id: UUID) -> list[dict[str, Any]]:
    """Every access-log entry about one record."""

    def read(cursor: str | None) -> tuple[Sequence[dict[str, Any]], str | None]:
        return access_log.query(record_id=record_id, limit=PAGE, cursor=cursor)

    return every_page(read)


def every_page(
    read: Callable[[str | None], tuple[Sequence[dict[str, Any]], str | None]],
) -> list[dict[str, Any]]:
    """Every row of a cursor-paged listing."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = read(cursor)
        rows += page
        if cursor is None:
            return rows
