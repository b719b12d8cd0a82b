"""Campaign enrolment: marketing reaches a customer only on a channel they consented to."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api.commands import CommanderDep, CommandPublic, reply
from api.deps import allow
from api.errors import COMMAND_PROBLEMS
from api.schemas.customers import NO_NUL
from projections.visibility import Visibility

router = APIRouter(prefix="/customers", tags=["campaigns"])

Enrolling = Annotated[Visibility, allow("campaigns", "write")]


class EnrolInCampaignRequest(BaseModel):
    """The campaign and the channel it will contact the customer on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"campaign": "spring-newsletter", "channel": "email"}]},
    )

    campaign: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    channel: Literal["email", "sms", "phone", "wechat"]


@router.post("/{customer_id}/campaigns", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def enrol_in_campaign(
    customer_id: UUID,
    body: EnrolInCampaignRequest,
    response: Response,
    commands: CommanderDep,
    visible: Enrolling,
) -> CommandPublic:
    """Enrol the customer in a marketing campaign on a channel.

    Refused with 409 `no-consent-for-channel` unless the customer granted consent on that
    channel; withdrawing the consent later ends the enrolments on it.
    """
    commands.customer(customer_id, visible)
    result = commands.run(
        commands.crm.enrol_customer_in_campaign,
        customer_id,
        body.campaign,
        channel=body.channel,
        expected_version=commands.expected_version,
    )
    return reply(result, response)
