"""Handlers that keep a `customers(customer_id, region)` table and deals' regions in step."""

from __future__ import annotations

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from domain.customer import CustomerProfileUpdated, CustomerRegistered
from projections.readmodel import ReadModelProjection, handles


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
