"""Customers: register, change, merge; the 360° view, timeline and search from customer_360."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.access import mask_document, permits, redact_customer, searches_contact_data
from api.commands import CommanderDep, CommandPublic, check_new_record, reply
from api.deps import (
    CurrentUser,
    Cursor,
    Limit,
    MinPosition,
    Reading,
    ReadModelsDep,
    RecordAccess,
    allow,
    allow_reading,
)
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from api.responses import json_response
from api.schemas.customers import (
    NO_NUL,
    AddContactRequest,
    AssignCustomerOwnerRequest,
    ChangeTierRequest,
    ContactAddedPublic,
    Customer360Public,
    CustomerPublic,
    CustomersPublic,
    LogInteractionRequest,
    MergeCustomersRequest,
    RecordBillingDetailsRequest,
    RecordConsentRequest,
    RegisterCustomerRequest,
    TagCustomerRequest,
    TimelineEntryPublic,
    TimelinePublic,
    UpdateCustomerRequest,
)
from domain.customer import KEEP, Tier
from domain.shared import NotFound
from projections.visibility import Visibility

router = APIRouter(prefix="/customers", tags=["customers"])

Readable = Annotated[Visibility, allow("customers", "read")]
Writable = Annotated[Visibility, allow("customers", "write")]
TagPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)]
Filter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL)]


@router.post("", status_code=201, response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def register_customer(
    body: RegisterCustomerRequest,
    response: Response,
    commands: CommanderDep,
    user: CurrentUser,
    visible: Writable,
) -> CommandPublic:
    """Register a customer; its email and phone must not belong to another customer."""
    owner = body.owner or user.username
    check_new_record(visible, region=body.region, owner=owner)
    result = commands.run(
        commands.crm.register_customer,
        kind=body.kind,
        name=body.name,
        region=body.region,
        owner=owner,
        email=body.email,
        phone=body.phone,
        industry=body.industry,
        source=body.source,
        customer_id=body.id,
    )
    response.headers["Location"] = f"/customers/{result.id}"
    return reply(result, response)


# --- queries -----------------------------------------------------------------------------------


@router.get("", response_model=CustomersPublic, responses=QUERY_PROBLEMS)
def search_customers(
    read_models: ReadModelsDep,
    user: CurrentUser,
    visible: Readable,
    record_access: RecordAccess,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Part of the name, email or phone."),
    ] = None,
    tag: Filter = None,
    owner: Filter = None,
    region: Filter = None,
    tier: Tier | None = None,
    include_merged: Annotated[
        bool, Query(description="Also list duplicates merged into another customer.")
    ] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> CustomersPublic:
    """Customers the caller may see, by name; contact data masked where the caller may not see
    it (such callers cannot search by email or phone either)."""
    rows, next_cursor = read_models.customers.search(
        text=q,
        tag=tag,
        owner=owner,
        region=region,
        tier=tier,
        include_merged=include_merged,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        visible=visible,
        match_contact_data=searches_contact_data(user),
    )
    record_access("customer.search", "customer", None, q=q, tag=tag, found=len(rows))
    return CustomersPublic(
        data=[CustomerPublic.model_validate(redact_customer(user, row)) for row in rows],
        next_cursor=next_cursor,
    )


@router.get("/{customer_id}", response_model=Customer360Public, responses=QUERY_PROBLEMS)
def read_customer(
    customer_id: UUID,
    read_models: ReadModelsDep,
    reading: Annotated[Reading, allow_reading("customers")],
    min_position: MinPosition = None,
) -> Response:
    """The customer's 360° view: profile, contacts, tags, consents, deals, tickets, activity."""
    document = read_models.customers.customer(customer_id, min_position=min_position)
    if document is None or not reading.visible.admits(
        region=document["region"], owner=document["owner"]
    ):
        raise NotFound("customer", customer_id)
    reading.record_access("customer.read", "customer", customer_id)
    document = redact_customer(reading.user, document)
    return json_response(Customer360Public.model_validate(document))


@router.get("/{customer_id}/timeline", response_model=TimelinePublic, responses=QUERY_PROBLEMS)
def customer_timeline(
    customer_id: UUID,
    read_models: ReadModelsDep,
    user: CurrentUser,
    visible: Readable,
    record_access: RecordAccess,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> TimelinePublic:
    """Every event about the customer, its merged duplicates, leads, deals and tickets, newest
    first. Callers who may not read opportunities get no deal events; callers without the
    personal-data right see addresses masked."""
    profile, rows, next_cursor = read_models.customers.owned_timeline(
        customer_id,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        without=() if permits(user, "opportunities", "read") else ("opportunity",),
    )
    if profile is None or not visible.admits(region=profile["region"], owner=profile["owner"]):
        raise NotFound("customer", customer_id)
    record_access("customer.timeline", "customer", customer_id)
    # An old event does not say which consent covered the address it carried: without the
    # personal-data right, addresses in the history are masked whatever the consent.
    return TimelinePublic(
        data=[TimelineEntryPublic.model_validate(mask_document(user, row)) for row in rows],
        next_cursor=next_cursor,
    )


# --- commands on one customer ------------------------------------------------------------------


@router.patch("/{customer_id}", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def update_customer(
    customer_id: UUID,
    body: UpdateCustomerRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Change profile fields (JSON merge patch: absent keeps, null clears email/phone/industry).

    A new email or phone must not belong to another customer (409); the caller must still be
    allowed to see the customer in its new region (403).
    """
    customer = commands.customer(customer_id, visible)
    given = body.model_fields_set
    if "region" in given and not visible.admits(region=body.region, owner=customer.owner):
        raise HTTPException(403, "You may not move a customer to a region you cannot see")
    result = commands.run(
        commands.crm.update_customer_profile,
        customer_id,
        name=body.name if "name" in given and body.name is not None else KEEP,
        email=body.email if "email" in given else KEEP,
        phone=body.phone if "phone" in given else KEEP,
        region=body.region if "region" in given and body.region is not None else KEEP,
        industry=(body.industry or "") if "industry" in given else KEEP,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post(
    "/{customer_id}/contacts",
    status_code=201,
    response_model=ContactAddedPublic,
    responses=COMMAND_PROBLEMS,
)
def add_contact(
    customer_id: UUID,
    body: AddContactRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> ContactAddedPublic:
    """Add a contact person; the answer carries the contact's id."""
    commands.customer(customer_id, visible)
    contact_id = body.id or uuid4()
    result = commands.run(
        commands.crm.add_customer_contact,
        customer_id,
        name=body.name,
        title=body.title,
        email=body.email,
        phone=body.phone,
        contact_id=contact_id,
        expected_version=commands.expected_version,
    )
    response.headers["Location"] = f"/customers/{customer_id}/contacts/{contact_id}"
    answer = reply(result, response)
    return ContactAddedPublic(**answer.model_dump(), contact_id=contact_id)


@router.delete(
    "/{customer_id}/contacts/{contact_id}", response_model=CommandPublic, responses=COMMAND_PROBLEMS
)
def remove_contact(
    customer_id: UUID,
    contact_id: UUID,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Remove a contact person (an unknown contact: 404)."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.remove_customer_contact,
        customer_id,
        contact_id,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{customer_id}/tags", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def tag_customer(
    customer_id: UUID,
    body: TagCustomerRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Tag the customer (stripped, lower-case); tagging twice changes nothing."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.tag_customer,
        customer_id,
        body.tag,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.delete(
    "/{customer_id}/tags/{tag}", response_model=CommandPublic, responses=COMMAND_PROBLEMS
)
def untag_customer(
    customer_id: UUID,
    tag: TagPath,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Take a tag off the customer; an absent tag changes nothing."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.untag_customer, customer_id, tag, expected_version=commands.expected_version
    )
    return reply(result, response)


@router.post("/{customer_id}/owner", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def assign_customer_owner(
    customer_id: UUID,
    body: AssignCustomerOwnerRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Hand the customer to an owner; the caller must be allowed to see it afterwards (403)."""
    customer = commands.customer(customer_id, visible)
    if not visible.admits(region=customer.region, owner=body.owner):
        raise HTTPException(
            403, "You may not give a customer to someone whose customers you cannot see"
        )
    result = commands.run(
        commands.crm.assign_customer_owner,
        customer_id,
        body.owner,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post(
    "/{customer_id}/interactions", response_model=CommandPublic, responses=COMMAND_PROBLEMS
)
def log_interaction(
    customer_id: UUID,
    body: LogInteractionRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Log a past call, visit, email, WeChat or meeting (one in the future: 409)."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.log_customer_interaction,
        customer_id,
        kind=body.kind,
        summary=body.summary,
        occurred_at=body.occurred_at,
        contact_id=body.contact_id,
        interaction_id=body.id,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{customer_id}/consents", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def record_consent(
    customer_id: UUID,
    body: RecordConsentRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Record the customer's grant or withdrawal of consent on a channel."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.record_customer_consent,
        customer_id,
        body.channel,
        granted=body.granted,
        legal_basis=body.legal_basis,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post(
    "/{customer_id}/billing-details", response_model=CommandPublic, responses=COMMAND_PROBLEMS
)
def record_billing_details(
    customer_id: UUID,
    body: RecordBillingDetailsRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Set the customer's ID (or tax ID) and bank account numbers used for invoicing."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.record_customer_billing_details,
        customer_id,
        id_number=body.id_number,
        bank_account=body.bank_account,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{customer_id}/tier", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def change_tier(
    customer_id: UUID,
    body: ChangeTierRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Move the customer to another service tier, saying why."""
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.change_customer_tier,
        customer_id,
        body.tier,
        reason=body.reason,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{customer_id}/merge", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def merge_customers(
    customer_id: UUID,
    body: MergeCustomersRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Merge the duplicate into this customer, which survives; the caller must see both.

    `If-Match` applies to the surviving customer. The duplicate becomes read-only.
    """
    commands.customer(customer_id, visible)
    commands.customer(body.duplicate_id, visible)
    result = commands.run(
        commands.crm.merge_customers,
        customer_id,
        body.duplicate_id,
        expected_version=commands.expected_version,
    )
    return reply(result, response)
