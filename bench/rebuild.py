"""Rebuild speed of every read model vs a raw read of the log, and append→visible lag.

Run: `.venv/bin/python -m bench.rebuild [--events N] [--database-url URL] [--database NAME]
[--no-each]` (default 1,000,000 events; without a URL an embedded PostgreSQL is started in a temp
dir; a named database that already holds events is reused, not seeded again). Seeds a realistic
history through the domain in large batches, then prints events/s of a raw paged read, of a
rebuild of all read models in one pass (as `crm projections rebuild --all`) and of each on its
own, their ratio, the peak memory (of this process and of the rebuild's second process, ADR
0009), and the p50/p99 lag between a command's commit and its visibility in the lead queue at a
steady 200 commands/s.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from random import Random
from uuid import uuid4

from domain.application import CRM
from domain.customer import Customer
from domain.lead import Lead
from domain.opportunity import Opportunity
from domain.shared import Aggregate, FixedClock, command_context
from domain.sla import DEFAULT_CALENDAR, DEFAULT_POLICY
from domain.ticket import Ticket
from domain.values import Money
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.projections import ProjectionSupervisor, rebuild, rebuild_many
from infra.services import EmbeddedPostgres, create_database
from infra.settings import Settings
from projections.catalog import READ_MODELS, read_model
from projections.readmodel import install

STAGES = ("needs_analysis", "proposal", "negotiation")


def account(rng: Random) -> list[Aggregate]:
    """One customer's history: ~26 events over a lead, a deal and two tickets."""
    customer = Customer.register(
        customer_id=uuid4(),
        kind="company",
        name=f"Company {rng.randrange(10**6)}",
        region=rng.choice(("east", "north", "south")),
        owner=f"user:{rng.randrange(20)}",
    )
    for tag in rng.sample(("vip", "retail", "smb", "churn-risk", "partner"), 2):
        customer.tag(tag)
    lead = Lead.capture(
        lead_id=uuid4(),
        channel=rng.choice(("web_form", "ads", "event")),
        name="Contact",
        region=customer.region,
        phone=f"+86 138 {rng.randrange(10**4):04d} {rng.randrange(10**4):04d}",
        campaign=rng.choice(("spring", "autumn", None)),
    )
    lead.score(rng.randrange(101), ["bench"])
    lead.assign(customer.owner, "bench@1", "bench")
    lead.log_activity(uuid4(), "call", "intro call")
    lead.qualify()
    deal = Opportunity.open(
        opportunity_id=uuid4(),
        customer_id=customer.id,
        title="Deal",
        amount=Money.of(rng.randrange(1000, 10**6), rng.choice(("CNY", "USD"))),
        expected_close=date(2026, rng.randrange(1, 13), 1),
        owner=customer.owner,
        source_lead_id=lead.id,
    )
    lead.convert(customer.id, deal.id)
    for stage in STAGES[: rng.randrange(1, 4)]:
        deal.move_to_stage(stage)  # type: ignore[arg-type]
    if deal.stage in ("proposal", "negotiation") and rng.random() < 0.5:
        deal.win(deal.amount, "C-bench")
    elif rng.random() < 0.3:
        deal.lose("price", None)
    tickets = []
    for _ in range(2):
        ticket = Ticket.open(
            uuid4(),
            customer.id,
            "email",
            "Help",
            "",
            rng.choice(("P1", "P2", "P3", "P4")),
            "general",
            DEFAULT_POLICY,
            DEFAULT_CALENDAR,
        )
        ticket.assign("user:agent", "support")
        ticket.record_first_response()
        ticket.resolve("done")
        ticket.rate(rng.randrange(1, 6))
        tickets.append(ticket)
    return [customer, lead, deal, *tickets]


def seed(crm: CRM, events: int, seed_value: int = 7) -> int:
    """Write about `events` events through the domain, many aggregates per save."""
    rng, written = Random(seed_value), 0
    clock = FixedClock(datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
    while written < events:
        batch: list[Aggregate] = []
        with command_context(actor="system:bench", clock=clock):
            while sum(len(a.pending_events) for a in batch) < 5000:
                batch += account(rng)
                clock.advance(minutes=3)
        written += len(crm.save(*batch))
    return written


def raw_read(crm: CRM, page: int = 5000) -> float:
    """Events/s of paging through the whole log without decoding."""
    started, position, count = time.perf_counter(), 0, 0
    while True:
        rows = crm.recorder.select_notifications(position, page, inclusive_of_start=False)
        if not rows:
            return count / (time.perf_counter() - started)
        count, position = count + len(rows), rows[-1].id


def lag_at(crm: CRM, database_url: str, rate: int = 200, seconds: float = 10.0) -> list[float]:
    """Commit→visible latencies (ms) in the lead queue while `rate` commands/s are issued."""
    view = install(read_model("lead_queue").view, crm.recorder.datastore)  # type: ignore[attr-defined]
    pending: dict[int, float] = {}
    lags: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or pending:
            position = view.position()
            now = time.perf_counter()
            for p in [p for p in pending if p <= position]:
                lags.append((now - pending.pop(p)) * 1000)
            time.sleep(0.001)

    with ProjectionSupervisor(crm, database_url):
        time.sleep(1.0)
        watcher = threading.Thread(target=watch)
        watcher.start()
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
            result = crm.capture_lead(
                channel="ads",
                name=f"Lag {n}",
                region="east",
                phone=f"+86 139 {n // 10**4 % 10**4:04d} {n % 10**4:04d}",
            )
            pending[result.position or 0] = time.perf_counter()
        done.set()
        watcher.join(30)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="server URL (default: embedded PostgreSQL)")
    parser.add_argument(
        "--no-each",
        dest="each",
        action="store_false",
        help="skip rebuilding each read model on its own after rebuilding all in one pass",
    )
    parser.add_argument(
        "--database", help="database to use; one already seeded is reused (default: a new one)"
    )
    args = parser.parse_args()
    server = None
    url = args.database_url
    if url is None:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="crm-bench-")) / "pg")
        url = server.start()
    try:
        database_url = create_database(url, args.database or f"bench_rebuild_{uuid4().hex[:8]}")
        settings = Settings(customer_snapshot_interval=0)
        migrate(settings, database_url)
        crm = build_crm(settings, database_url)
        total = crm.recorder.max_notification_id() or 0
        if total:
            print(f"reusing {total:,} events of {database_url}")
        else:
            started = time.perf_counter()
            total = seed(crm, args.events)
            print(f"seeded {total:,} events in {time.perf_counter() - started:.0f} s")
        raw = raw_read(crm)
        print(f"{'raw paged read':<26} {raw:>10,.0f} events/s")
        started = time.perf_counter()
        rebuild_many(crm, READ_MODELS)
        rate = total / (time.perf_counter() - started)
        print(f"{'rebuild all, one pass':<26} {rate:>10,.0f} events/s  ratio {rate / raw:.3f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        second = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{'peak memory (RSS)':<26} {peak:>10,.0f} MiB  (second process {second:,.0f} MiB)")
        for spec in READ_MODELS if args.each else ():
            t = time.perf_counter()
            rebuild(crm, spec)
            rate = total / (time.perf_counter() - t)
            print(f"{'rebuild ' + spec.name:<26} {rate:>10,.0f} events/s  ratio {rate / raw:.3f}")
        lags = sorted(lag_at(crm, database_url))
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(
            f"append→visible at 200 commands/s: p50 {statistics.median(lags):.1f} ms, "
            f"p99 {p99:.1f} ms ({len(lags)} commands)"
        )
        crm.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
