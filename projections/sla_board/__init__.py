"""SLA board: open tickets, most urgent first, on track / at risk / breached; SLA compliance."""

from projections.sla_board.projection import SlaBoardProjection
from projections.sla_board.rebuild import SlaBoardRebuild
from projections.sla_board.state import SlaState, sla_status
from projections.sla_board.view import SlaBoardView

__all__ = ["SlaBoardProjection", "SlaBoardRebuild", "SlaBoardView", "SlaState", "sla_status"]
