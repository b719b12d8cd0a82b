"""Sales funnel: stages, conversion from lead to won, days in each stage, and stalled deals."""

from projections.pagination import InvalidCursor
from projections.sales_funnel.period import Period
from projections.sales_funnel.projection import SalesFunnelProjection
from projections.sales_funnel.rebuild import SalesFunnelRebuild
from projections.sales_funnel.view import DEFAULT_STALL_THRESHOLDS, SalesFunnelView

__all__ = [
    "DEFAULT_STALL_THRESHOLDS",
    "InvalidCursor",
    "Period",
    "SalesFunnelProjection",
    "SalesFunnelRebuild",
    "SalesFunnelView",
]
