"""What every group of use cases shares: the command runner, the config, common lookups."""

from __future__ import annotations

from uuid import UUID

from domain.application.commands import CommandRunner
from domain.application.config import CRMConfig
from domain.customer import Customer, check_not_merged
from domain.shared import Clock


class UseCases:
    """Base of the per-resource use-case groups mixed into `CRM`."""

    commands: CommandRunner
    config: CRMConfig
    clock: Clock

    def _live_customer(self, customer_id: UUID) -> Customer:
        """The customer, refusing unknown and merged ones."""
        customer = self.commands.load(Customer, customer_id)
        check_not_merged(customer)
        return customer
