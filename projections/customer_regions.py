"""Handlers that keep a `customers(customer_id, region)` table and deals' regions in step."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from domain.customer import CustomerProfileUpdated, CustomerRegistered
from projections.bulk import BulkRebuild
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles


class CustomerRegions(ReadModelProjection):
    """Mixin for read models that slice deals by their customer's region."""

    @handles(CustomerRegistered)
    def customer_registered(self, curs: Cursor[DictRow], event: CustomerRegistered) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, region) VALUES (%s, %s) "
                "ON CONFLICT (customer_id) DO NOTHING"
            ).format(self.view.table("customers")),
            (event.originator_id, event.region),
        )

    @handles(CustomerProfileUpdated)
    def customer_updated(self, curs: Cursor[DictRow], event: CustomerProfileUpdated) -> None:
        region = event.changes.get("region")
        if region is None:
            return
        for table in ("customers", "opportunities"):
            curs.execute(
                SQL("UPDATE {} SET region = %s WHERE customer_id = %s").format(
                    self.view.table(table)
                ),
                (region, event.originator_id),
            )


class CustomerRegionsRebuild(BulkRebuild):
    """CustomerRegions in memory: `deals_of` finds a customer's deals, as `WHERE customer_id`."""

    def __init__(self, view: ReadModelView, columns: dict[str, tuple[str, ...]]) -> None:
        super().__init__(view, columns)
        self.deals_of: dict[UUID, list[UUID]] = defaultdict(list)

    @handles(CustomerRegistered)
    def customer_registered(self, event: CustomerRegistered) -> None:
        self.tables["customers"].add_new(
            event.originator_id, customer_id=event.originator_id, region=event.region
        )

    @handles(CustomerProfileUpdated)
    def customer_updated(self, event: CustomerProfileUpdated) -> None:
        region = event.changes.get("region")
        if region is None:
            return
        self.tables["customers"].set(event.originator_id, region=region)
        deals = self.tables["opportunities"]
        for deal_id in self.deals_of.get(event.originator_id, ()):
            deals.set(deal_id, region=region)

    def add_deal(self, deal_id: UUID, **values: Any) -> Row | None:
        """INSERT ... ON CONFLICT DO NOTHING into `opportunities`, indexed by customer."""
        row = self.tables["opportunities"].add_new(deal_id, **values)
        if row is not None:
            self.deals_of[row["customer_id"]].append(deal_id)
        return row
