"""Every read model the CRM maintains: its view (tables + queries) and its projection."""

from __future__ import annotations

from dataclasses import dataclass

from projections.customer_360 import Customer360Projection, Customer360View
from projections.handoffs import HandoffsProjection, HandoffsView
from projections.lead_queue import LeadQueueProjection, LeadQueueView
from projections.pipeline_forecast import PipelineForecastProjection, PipelineForecastView
from projections.readmodel import ReadModelProjection, ReadModelView
from projections.sales_funnel import SalesFunnelProjection, SalesFunnelView
from projections.sla_board import SlaBoardProjection, SlaBoardView
from projections.task_list import TaskListProjection, TaskListView


@dataclass(frozen=True)
class ReadModelSpec:
    """A read model's name, view class and projection class."""

    view: type[ReadModelView]
    projection: type[ReadModelProjection]

    def __post_init__(self) -> None:
        self.view.topics = self.projection.topics  # what its waits for a position look for

    @property
    def name(self) -> str:
        return self.view.name


READ_MODELS: tuple[ReadModelSpec, ...] = (
    ReadModelSpec(LeadQueueView, LeadQueueProjection),
    ReadModelSpec(SlaBoardView, SlaBoardProjection),
    ReadModelSpec(SalesFunnelView, SalesFunnelProjection),
    ReadModelSpec(PipelineForecastView, PipelineForecastProjection),
    ReadModelSpec(Customer360View, Customer360Projection),
    ReadModelSpec(TaskListView, TaskListProjection),
    ReadModelSpec(HandoffsView, HandoffsProjection),
)


def read_model(name: str) -> ReadModelSpec:
    """The read model called `name`, or KeyError listing the known ones."""
    for spec in READ_MODELS:
        if spec.name == name:
            return spec
    raise KeyError(f"no read model {name!r}; known: {', '.join(s.name for s in READ_MODELS)}")
