"""Customers: register, change, merge; the 360° view and timeline from the customer_360 model."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.access import redact_customer
from api.commands import CommanderDep, CommandPublic, check_new_record, reply
from api.deps import CurrentUser, MinPosition, ReadModelsDep, RecordAccess, allow
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from domain.customer import CustomerKind
from domain.shared import NotFound
from projections.visibility import Visibility

router = APIRouter(prefix="/customers", tags=["customers"])

Readable = Annotated[Visibility, allow("customers", "read")]
Writable = Annotated[Visibility, allow("customers", "write")]


class RegisterCustomerRequest(BaseModel):
    """A new customer; `owner` defaults to the caller."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "company",
                    "name": "Acme Trading Co.",
                    "region": "east",
                    "email": "buyer@acme.example",
                    "phone": "+86 138 0013 8000",
                    "industry": "retail",
                    "source": "trade-show",
                }
            ]
        },
    )

    kind: CustomerKind
    name: str = Field(min_length=1, max_length=200)
    region: str = Field(min_length=1, max_length=64)
    owner: str | None = Field(default=None, min_length=1, max_length=64)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40)
    industry: str = Field(default="", max_length=100)
    source: str = Field(default="", max_length=100)
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


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


@router.get("/{customer_id}", responses=QUERY_PROBLEMS)
def read_customer(
    customer_id: UUID,
    read_models: ReadModelsDep,
    user: CurrentUser,
    visible: Readable,
    record_access: RecordAccess,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """The customer's 360° view: profile, contacts, tags, consents, deals, tickets, activity."""
    document = read_models.customers.customer(customer_id, min_position=min_position)
    if document is None or not visible.admits(region=document["region"], owner=document["owner"]):
        raise NotFound("customer", customer_id)
    record_access("customer.read", "customer", customer_id)
    return redact_customer(user, document)
