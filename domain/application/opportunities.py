"""Opportunity use cases: the sales pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

from domain.application.base import UseCases
from domain.application.commands import CommandResult
from domain.lead import Lead
from domain.opportunity import DEFAULT_STAGE_PROBABILITIES, OpenStage, Opportunity
from domain.values import Money


class OpportunityUseCases(UseCases):
    """Open, move, win and lose deals."""

    def open_opportunity(
        self,
        *,
        customer_id: UUID,
        title: str,
        amount: Decimal | str,
        currency: str,
        expected_close: date,
        owner: str,
        source_lead_id: UUID | None = None,
        opportunity_id: UUID | None = None,
    ) -> CommandResult:
        """Open an opportunity for a live (not merged) customer, in `qualification`."""
        opportunity_id = opportunity_id or uuid4()
        self._live_customer(customer_id)
        if source_lead_id is not None:
            self.commands.load(Lead, source_lead_id)
        money = Money.of(amount, currency)
        return self.commands.create(
            lambda: [
                Opportunity.open(
                    opportunity_id=opportunity_id,
                    customer_id=customer_id,
                    title=title,
                    amount=money,
                    expected_close=expected_close,
                    owner=owner,
                    source_lead_id=source_lead_id,
                )
            ]
        )

    def move_opportunity_stage(
        self, opportunity_id: UUID, stage: OpenStage, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._opportunity(opportunity_id, expected_version, lambda o: o.move_to_stage(stage))

    def change_opportunity_amount(
        self,
        opportunity_id: UUID,
        amount: Decimal | str,
        currency: str,
        *,
        expected_version: int | None = None,
    ) -> CommandResult:
        money = Money.of(amount, currency)
        return self._opportunity(opportunity_id, expected_version, lambda o: o.change_amount(money))

    def change_opportunity_expected_close(
        self, opportunity_id: UUID, expected_close: date, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._opportunity(
            opportunity_id, expected_version, lambda o: o.change_expected_close(expected_close)
        )

    def win_opportunity(
        self,
        opportunity_id: UUID,
        *,
        amount: Decimal | str,
        currency: str,
        contract_reference: str,
        expected_version: int | None = None,
    ) -> CommandResult:
        money = Money.of(amount, currency)
        return self._opportunity(
            opportunity_id, expected_version, lambda o: o.win(money, contract_reference)
        )

    def lose_opportunity(
        self,
        opportunity_id: UUID,
        *,
        reason: str,
        competitor: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._opportunity(
            opportunity_id, expected_version, lambda o: o.lose(reason, competitor)
        )

    def reopen_opportunity(
        self, opportunity_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._opportunity(opportunity_id, expected_version, lambda o: o.reopen())

    def opportunity_probability(self, opportunity: Opportunity) -> int:
        """Win probability of the opportunity's stage by the configured table."""
        table = {**DEFAULT_STAGE_PROBABILITIES, **self.config.stage_probabilities}
        return opportunity.probability(table)

    def _opportunity(
        self,
        opportunity_id: UUID,
        expected_version: int | None,
        command: Callable[[Opportunity], None],
    ) -> CommandResult:
        return self.commands.change(Opportunity, opportunity_id, command, expected_version)
