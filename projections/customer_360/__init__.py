"""Customer 360°: profile, contacts, tags, consents, deals, tickets, leads and one timeline."""

from projections.customer_360.projection import Customer360Projection
from projections.customer_360.rebuild import Customer360Rebuild
from projections.customer_360.view import Customer360View
from projections.pagination import InvalidCursor

__all__ = ["Customer360Projection", "Customer360Rebuild", "Customer360View", "InvalidCursor"]
