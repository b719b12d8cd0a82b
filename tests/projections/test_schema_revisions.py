"""A read model whose schema changed is refused live until a rebuild gives it a new version."""

from __future__ import annotations

from typing import Any

import pytest

from domain.application import CRM
from projections.catchup import catch_up
from projections.lead_queue import LeadQueueProjection, LeadQueueView
from projections.readmodel import REGISTRY_TABLE, SchemaOutdated
from projections.replay import replay


def test_a_version_built_with_an_older_schema_is_refused_live_until_rebuilt(
    crm: CRM, read_model: Any
) -> None:
    view, catch_up_live = read_model(LeadQueueView, LeadQueueProjection)
    crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
    catch_up_live()
    with view.datastore.transaction(commit=True) as curs:  # as a registry from before revisions
        curs.execute(
            f"UPDATE {REGISTRY_TABLE} SET schema_revision = NULL WHERE name = %s", (view.name,)
        )
    crm.capture_lead(channel="ads", name="Wu", region="east", phone="13812345679")

    with pytest.raises(SchemaOutdated, match="lead_queue v1 has schema 1, this code needs 2"):
        catch_up_live()

    rebuilt = LeadQueueView(view.datastore, version=view.version + 1)
    rebuilt.create_table()
    replay([LeadQueueProjection(view=rebuilt)], crm.recorder, crm.mapper)
    rebuilt.activate()
    crm.capture_lead(channel="ads", name="Ma", region="east", phone="13812345670")
    catch_up(LeadQueueProjection(view=rebuilt), crm.recorder, crm.mapper)
    assert len(rebuilt.queue()[0]) == 3
