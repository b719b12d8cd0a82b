"""How routes run commands: as the caller, on records the caller may see, replying id + version.

A command on an existing record first checks, on the record's current state, that the caller
may see it (else 404, as for an unknown id); `If-Match` becomes the expected version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ParamSpec
from uuid import UUID

from fastapi import Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict

from api.deps import CorrelationId, CRMDep, CurrentUser, ExpectedVersion
from api.security import Principal
from domain.application import CRM, CommandResult
from domain.customer import Customer
from domain.lead import Lead
from domain.opportunity import Opportunity
from domain.shared import NotFound, command_context
from domain.ticket import Ticket
from projections.visibility import Visibility

P = ParamSpec("P")


class CommandPublic(BaseModel):
    """What every command answers: the record, its new version and the log position written.

    Pass `position` as `?min_position=` to a query to read your own write.
    `position` is null when the command changed nothing (a repeated command is a no-op).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "version": 3, "position": 1042}
            ]
        }
    )

    id: UUID
    version: int
    position: int | None


@dataclass
class Commander:
    """Runs use cases of the CRM as the calling user, with the request's correlation id."""

    crm: CRM
    user: Principal
    correlation_id: UUID
    expected_version: int | None
    # What the access checks below loaded: the command starts from it rather than reading the
    # record again (one read less, and the rule sees exactly the state that was checked).
    checked: dict[UUID, Any] = field(default_factory=dict)

    def run(self, command: Callable[P, CommandResult], *args: P.args, **kwargs: P.kwargs) -> Any:
        preloaded, self.checked = self.checked, {}
        with command_context(
            actor=self.user.actor, correlation_id=self.correlation_id, preloaded=preloaded
        ):
            return command(*args, **kwargs)

    # --- record-level access on the current state ------------------------------------------

    def customer(self, customer_id: UUID, visible: Visibility) -> Customer:
        customer = self.crm.commands.load(Customer, customer_id)
        if not visible.admits(region=customer.region, owner=customer.owner):
            raise NotFound("customer", customer_id)
        self.checked[customer_id] = customer
        return customer

    def lead(self, lead_id: UUID, visible: Visibility) -> Lead:
        lead = self.crm.commands.load(Lead, lead_id)
        if not visible.admits(region=lead.region, owner=lead.owner):
            raise NotFound("lead", lead_id)
        self.checked[lead_id] = lead
        return lead

    def opportunity(self, opportunity_id: UUID, visible: Visibility) -> Opportunity:
        opportunity = self.crm.commands.load(Opportunity, opportunity_id)
        if not visible.unrestricted:
            customer = self.crm.commands.find(Customer, opportunity.customer_id)
            region = customer.region if customer else None
            if not visible.admits(region=region, owner=opportunity.owner):
                raise NotFound("opportunity", opportunity_id)
        self.checked[opportunity_id] = opportunity
        return opportunity

    def ticket(self, ticket_id: UUID, visible: Visibility) -> Ticket:
        ticket = self.crm.commands.load(Ticket, ticket_id)
        if not visible.unrestricted:
            customer = self.crm.commands.find(Customer, ticket.customer_id)
            if customer is None or not visible.admits(
                region=customer.region, customer_owner=customer.owner, owner=customer.owner
            ):
                raise NotFound("ticket", ticket_id)
        self.checked[ticket_id] = ticket
        return ticket


async def get_commander(
    crm: CRMDep, user: CurrentUser, correlation_id: CorrelationId, expected: ExpectedVersion
) -> Commander:
    return Commander(crm, user, correlation_id, expected)


CommanderDep = Annotated[Commander, Depends(get_commander)]


def check_new_record(visible: Visibility, *, region: str | None, owner: str | None) -> None:
    """A user may only create records they would be allowed to see (403 otherwise)."""
    if not visible.admits(region=region, owner=owner, customer_owner=owner):
        raise HTTPException(403, "You may not create a record you would not be allowed to see")


def reply(result: CommandResult, response: Response) -> CommandPublic:
    """The command's answer, with the new version as ETag and the position as a header."""
    response.headers["ETag"] = f'"{result.version}"'
    if result.position is not None:
        response.headers["X-Position"] = str(result.position)
    return CommandPublic(id=result.id, version=result.version, position=result.position)
