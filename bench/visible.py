"""Append → read-model visible: the lag between a command's answer and its row in a read model.

Run: `.venv/bin/python -m bench.visible [--rate 500] [--seconds 10] [--database-url URL]`
(without a URL an embedded PostgreSQL is started in a temp dir). Every read model's projection
runs live in its own process (`crm projections run`, as deployed), and lead captures are issued
from this process open-loop at
`--rate` per second by a pool of writer threads (each command is due at a fixed instant, so a
slow one delays none of the others). A watcher polls the lead queue's position; a command's lag
runs from its answer to the first poll that shows its position. Afterwards every captured lead
must be in the lead queue: the number missing is printed as "skipped" (the target is 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID, uuid4

from psycopg.sql import SQL

from domain.application import CRM
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.services import EmbeddedPostgres, create_database, drop_database
from infra.settings import Settings
from projections.catalog import READ_MODELS, read_model
from projections.readmodel import install

WRITERS = 16


@contextmanager
def projections_process(database_url: str) -> Iterator[None]:
    """`crm projections run` against `database_url`, stopped on exit."""
    env = {**os.environ, "CRM_DATABASE_URL": database_url, "CRM_NATS_URL": "nats://127.0.0.1:1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "projections", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def measure(crm: CRM, database_url: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """(lags in ms of every command, leads missing from the lead queue afterwards)."""
    view = install(read_model("lead_queue").view, crm.recorder.datastore)  # type: ignore[attr-defined]
    pending: dict[int, float] = {}
    guard = threading.Lock()
    lags: list[float] = []
    captured: list[UUID] = []
    done = threading.Event()

    def watch() -> None:
        while True:
            position = view.position()
            now = time.perf_counter()
            with guard:
                for p in [p for p in pending if p <= position]:
                    lags.append((now - pending.pop(p)) * 1000)
                if done.is_set() and not pending:
                    return
            time.sleep(0.001)

    def capture(n: int, due: float) -> None:
        time.sleep(max(0.0, due - time.perf_counter()))
        lead_id = uuid4()
        result = crm.capture_lead(
            channel="ads",
            name=f"Lag {n}",
            region="east",
            phone=f"+86 139 {n // 10**4 % 10**4:04d} {n % 10**4:04d}",
            lead_id=lead_id,
        )
        answered = time.perf_counter()
        with guard:
            pending[result.position or 0] = answered
            captured.append(lead_id)

    with projections_process(database_url):
        warm_up = crm.capture_lead(channel="ads", name="Warm", region="east", email="w@example.com")
        datastore = crm.recorder.datastore  # type: ignore[attr-defined]
        for spec in READ_MODELS:  # every worker started and caught up: none is still starting
            install(spec.view, datastore).wait_for(warm_up.position, timeout=60)
        time.sleep(1.0)
        watcher = threading.Thread(target=watch)
        watcher.start()
        start = time.perf_counter() + 0.1
        with ThreadPoolExecutor(WRITERS) as pool:
            for n in range(int(rate * seconds)):
                pool.submit(capture, n, start + n / rate)
        done.set()
        watcher.join(60)
    found = view.fetch(
        SQL("SELECT count(*) AS n FROM {} WHERE lead_id = ANY(%s)").format(view.reader("leads")),
        (captured,),
    )
    return lags, len(captured) - int(found[0]["n"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="commands per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", help="server URL (default: embedded PostgreSQL)")
    args = parser.parse_args()
    server = None
    url = args.database_url
    if url is None:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="crm-bench-")) / "pg")
        url = server.start()
    name = f"bench_visible_{uuid4().hex[:8]}"
    try:
        database_url = create_database(url, name)
        settings = Settings(customer_snapshot_interval=0, db_pool_size=WRITERS + 4)
        migrate(settings, database_url)
        crm = build_crm(settings, database_url)
        try:
            lags, skipped = measure(crm, database_url, args.rate, args.seconds)
        finally:
            crm.close()
        lags.sort()
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(
            f"append→visible (lead queue, all read models live) at {args.rate:.0f} commands/s: "
            f"p50 {statistics.median(lags):.1f} ms, p99 {p99:.1f} ms, max {lags[-1]:.1f} ms, "
            f"{len(lags)} commands, skipped {skipped}"
        )
        drop_database(url, name)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
