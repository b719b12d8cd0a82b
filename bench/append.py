"""Append throughput: the plain eventsourcing library vs our CRM application, same PostgreSQL.

Run: `.venv/bin/python -m bench.append [--commands N] [--rounds N] [--database-url URL]`
(without a URL an embedded PostgreSQL is started in a temp dir). Three scenarios: 1 writer
thread and 16 writer threads of one-event commands, and 16 writers of ten-event commands. Each
runs the plain library, ours with group commit (the default) and ours without, in alternating
rounds, and prints commands/s, events/s, p50/p99 latency, the ratio to the plain library and,
for ours, how many saves a transaction carried on average.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from domain.application import CRM
from domain.customer import Customer
from domain.shared import Aggregate as CRMAggregate
from infra.persistence import event_store_env, migrate, postgres_env
from infra.services import EmbeddedPostgres, create_database, drop_database
from infra.settings import Settings


class Note(Aggregate):
    """The plain library's minimal aggregate (default dataclass events, JSON transcoder)."""

    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text

    @event("Rewritten")
    def rewrite(self, text: str) -> None:
        self.text = text


class PlainApp(Application[uuid.UUID]):
    """The baseline: the library as it comes."""

    name = "Plain"


@dataclass
class Figures:
    """Wall time and per-command latencies (seconds) of one round."""

    elapsed: float
    latencies: list[float]


def combine(rounds: list[Figures]) -> dict[str, float]:
    """Commands/s over all rounds, p50/p99 latency in ms."""
    flat = sorted(x for r in rounds for x in r.latencies)
    return {
        "rate": len(flat) / sum(r.elapsed for r in rounds),
        "p50": statistics.median(flat) * 1000,
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
    }


def run_writers(threads: int, per_thread: int, command: Callable[[int], object]) -> Figures:
    """Run `command` `per_thread` times in each of `threads` threads started together."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def writer(index: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            started = time.perf_counter()
            command(index * per_thread + i)
            latencies[index].append(time.perf_counter() - started)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return Figures(elapsed, [x for per in latencies for x in per])


def fresh_database(server_url: str, name: str) -> str:
    """An empty database `name` (dropped first if an earlier run left it)."""
    drop_database(server_url, name)
    return create_database(server_url, name)


@dataclass(frozen=True)
class Scenario:
    writers: int
    events_per_command: int


SCENARIOS = (Scenario(1, 1), Scenario(16, 1), Scenario(16, 10))
APPS = ("plain", "ours", "ours, no group commit")


@dataclass
class Row:
    app: str
    scenario: Scenario
    figures: dict[str, float]
    saves_per_transaction: float | None


def bench(server_url: str, commands: int, rounds: int) -> list[Row]:
    """Every app in every scenario; rounds alternate the apps' order so disk drift hits all."""
    rows = []
    for scenario in SCENARIOS:
        pool = max(scenario.writers, 5)
        plain = PlainApp(
            env={
                **postgres_env(fresh_database(server_url, "bench_plain")),
                "CREATE_TABLE": "y",
                "POSTGRES_POOL_SIZE": str(pool),
            }
        )
        apps: dict[str, Callable[[int], object]] = {"plain": plain_command(plain, scenario)}
        crms: dict[str, CRM] = {}
        for name, group_commit in (("ours", True), ("ours, no group commit", False)):
            url = fresh_database(server_url, "bench_" + ("ours" if group_commit else "single"))
            settings = Settings(
                db_pool_size=pool, customer_snapshot_interval=0, group_commit=group_commit
            )
            migrate(settings, url)
            crms[name] = CRM(env=event_store_env(settings, url))
            apps[name] = our_command(crms[name], scenario)
        per_round = max(scenario.writers, commands // rounds) // scenario.writers
        results: dict[str, list[Figures]] = {name: [] for name in APPS}
        for n in range(rounds):
            order = list(APPS[n % len(APPS) :] + APPS[: n % len(APPS)])
            for name in order:
                offset = n * per_round * scenario.writers
                results[name].append(
                    run_writers(scenario.writers, per_round, shifted(apps[name], offset))
                )
        for name in APPS:
            per_batch = None
            if name in crms:
                group = getattr(crms[name].recorder, "_group", None)
                if group is not None and group.batches and crms[name].recorder.group_commit:  # type: ignore[attr-defined]
                    per_batch = group.saves / group.batches
            rows.append(Row(name, scenario, combine(results[name]), per_batch))
        plain.close()
        for crm in crms.values():
            crm.close()
    return rows


def shifted(command: Callable[[int], object], offset: int) -> Callable[[int], object]:
    """`command` numbering its records from `offset`, so rounds never reuse an email."""
    return lambda i: command(offset + i)


def plain_command(plain: PlainApp, scenario: Scenario) -> Callable[[int], object]:
    """One command of the baseline: create an aggregate with its events, save them together."""

    def command(i: int) -> object:
        note = Note(text=f"note {i}")
        for n in range(scenario.events_per_command - 1):
            note.rewrite(text=f"note {i}, draft {n}")
        return plain.save(note)

    return command


def our_command(crm: CRM, scenario: Scenario) -> Callable[[int], object]:
    """One command of ours: capture a lead (validation, metadata, a new personal-data key, one
    event); for ten events, register a customer and tag it nine times in one command."""
    if scenario.events_per_command == 1:
        return lambda i: crm.capture_lead(
            channel="web_form", name=f"Lead {i}", email=f"lead{i}@example.com", region="east"
        )

    def decide(i: int) -> list[CRMAggregate]:
        customer = Customer.register(
            customer_id=uuid.uuid4(),
            kind="company",
            name=f"Customer {i}",
            region="east",
            owner="u:1",
            email=f"customer{i}@example.com",
        )
        for n in range(scenario.events_per_command - 1):
            customer.tag(f"tag-{n}")
        return [customer]

    return lambda i: crm.commands.create(lambda: decide(i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=3000, help="commands per app and scenario")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per scenario")
    parser.add_argument("--database-url", help="server URL (default: embedded PostgreSQL)")
    args = parser.parse_args()
    server: EmbeddedPostgres | None = None
    url = args.database_url
    if url is None:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="crm-bench-")) / "pg")
        url = server.start()
    try:
        rows = bench(url, args.commands, args.rounds)
    finally:
        if server is not None:
            server.stop()
    print(
        f"{'app':<22} {'writers':>7} {'events/cmd':>10} {'commands/s':>10} {'events/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} {'saves/tx':>8}"
    )
    plain_rates = {r.scenario: r.figures["rate"] for r in rows if r.app == "plain"}
    for r in rows:
        rate = r.figures["rate"]
        per_tx = "" if r.saves_per_transaction is None else f"{r.saves_per_transaction:.1f}"
        print(
            f"{r.app:<22} {r.scenario.writers:>7} {r.scenario.events_per_command:>10} "
            f"{rate:>10.0f} {rate * r.scenario.events_per_command:>9.0f} "
            f"{r.figures['p50']:>7.2f} {r.figures['p99']:>7.2f} "
            f"{rate / plain_rates[r.scenario]:>6.2f} {per_tx:>8}"
        )


if __name__ == "__main__":
    main()
