"""Which rows of a listing a reader may see, as SQL: the record-level half of access control.

The API decides *who* sees *what* (api/access.py) and hands the listing a `Visibility`; this
module only turns it into a WHERE clause over the columns that listing has. Customers' owners
and regions come from the customer 360° read model, so tickets and opportunities can be
scoped by the customer they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.sql import SQL, Composed, Identifier

CUSTOMERS = Identifier("rm_customer_360_customers")


@dataclass(frozen=True)
class Visibility:
    """Restrictions a reader's rows must meet; the default restricts nothing.

    - `region`: only records of this region (a record's own region, or its customer's).
    - `owner`: only records this user owns...
    - `or_unassigned_in_region`: ...or, with this region, unowned records of it (leads).
    - `customer_owner`: only records whose customer this user owns (tickets of sales users).
    - `assignee_or_team`: (user, team): only records assigned to this user, or to this team
      when it is not None (tasks).
    """

    region: str | None = None
    owner: str | None = None
    or_unassigned_in_region: str | None = None
    customer_owner: str | None = None
    assignee_or_team: tuple[str, str | None] | None = None

    @property
    def unrestricted(self) -> bool:
        return self == Visibility()

    def admits(
        self,
        *,
        region: str | None = None,
        owner: str | None = None,
        customer_owner: str | None = None,
        assignee: str | None = None,
        team: str | None = None,
    ) -> bool:
        """Whether one record with these facts is visible (for reads and commands by id)."""
        if self.assignee_or_team is not None:
            user, users_team = self.assignee_or_team
            if assignee != user and (users_team is None or team != users_team):
                return False
        if self.region is not None and region != self.region:
            return False
        if self.owner is not None and owner != self.owner:
            unassigned_here = (
                owner is None
                and self.or_unassigned_in_region is not None
                and region == self.or_unassigned_in_region
            )
            if not unassigned_here:
                return False
        return self.customer_owner is None or customer_owner == self.customer_owner

    def where(
        self,
        *,
        region: str | None = None,
        owner: str | None = None,
        customer_id: str | None = None,
        assignee: str | None = None,
        team: str | None = None,
    ) -> tuple[list[Composed | SQL], list[Any]]:
        """SQL conditions (and their parameters) over a listing's columns.

        Pass the listing's column names: `region` and `owner` when it has them, `customer_id`
        when region or owner must be looked up on the record's customer instead, `assignee`
        and `team` for work handed to a person or a team (tasks).
        """
        where: list[Composed | SQL] = []
        params: list[Any] = []
        if self.assignee_or_team is not None:
            if assignee is None or team is None:
                raise ValueError("this listing cannot be restricted to an assignee or team")
            user, users_team = self.assignee_or_team
            if users_team is None:
                where.append(SQL("{} = %s").format(Identifier(assignee)))
                params.append(user)
            else:
                where.append(
                    SQL("({} = %s OR {} = %s)").format(Identifier(assignee), Identifier(team))
                )
                params.extend([user, users_team])
        if self.region is not None:
            if region is not None:
                where.append(SQL("{} = %s").format(Identifier(region)))
            elif customer_id is not None:
                where.append(_customer_in("region", customer_id))
            else:
                raise ValueError("this listing cannot be restricted to a region")
            params.append(self.region)
        if self.owner is not None:
            if owner is None:
                raise ValueError("this listing cannot be restricted to an owner")
            column = Identifier(owner)
            if self.or_unassigned_in_region is not None and region is not None:
                where.append(
                    SQL("({} = %s OR ({} IS NULL AND {} = %s))").format(
                        column, column, Identifier(region)
                    )
                )
                params.extend([self.owner, self.or_unassigned_in_region])
            else:
                where.append(SQL("{} = %s").format(column))
                params.append(self.owner)
        if self.customer_owner is not None:
            if customer_id is None:
                raise ValueError("this listing has no customer to restrict by")
            where.append(_customer_in("owner", customer_id))
            params.append(self.customer_owner)
        return where, params


def _customer_in(column: str, customer_id: str) -> Composed:
    return SQL("{} IN (SELECT customer_id FROM {} WHERE {} = %s)").format(
        Identifier(customer_id), CUSTOMERS, Identifier(column)
    )
