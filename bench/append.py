"""Append throughput: the plain eventsourcing library vs our CRM application, same PostgreSQL.

Run: `.venv/bin/python -m bench.append [--commands N] [--database-url URL]`
(without a URL an embedded PostgreSQL is started in a temp dir). Prints commands/s, p50/p99
latency and the our/plain ratio for 1 and 16 writer threads; every command records one event.
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
from infra.persistence import event_store_env, migrate, postgres_env
from infra.services import EmbeddedPostgres, create_database, drop_database
from infra.settings import Settings


class Note(Aggregate):
    """The plain library's minimal aggregate (default dataclass events, JSON transcoder)."""

    @event("Written")
    def __init__(self, text: str) -> None:
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


def bench(server_url: str, commands: int, rounds: int) -> list[tuple[str, int, dict[str, float]]]:
    """Both apps, 1 and 16 writers; rounds alternate between the apps so disk drift hits both."""
    rows = []
    for threads in (1, 16):
        pool = max(threads, 5)
        plain = PlainApp(
            env={
                **postgres_env(fresh_database(server_url, "bench_plain")),
                "CREATE_TABLE": "y",
                "POSTGRES_POOL_SIZE": str(pool),
            }
        )
        ours_url = fresh_database(server_url, "bench_ours")
        settings = Settings(db_pool_size=pool, customer_snapshot_interval=0)
        migrate(settings, ours_url)
        crm = CRM(env=event_store_env(settings, ours_url))
        per_round = max(threads, commands // rounds) // threads
        results: dict[str, list[Figures]] = {"plain": [], "ours": []}
        for n in range(rounds):
            order = [("plain", plain_note(plain)), ("ours", our_lead(crm))]
            for name, command in order if n % 2 == 0 else reversed(order):
                offset = n * per_round * threads
                results[name].append(run_writers(threads, per_round, shifted(command, offset)))
        plain.close()
        crm.close()
        rows += [(name, threads, combine(figures)) for name, figures in results.items()]
    return rows


def shifted(command: Callable[[int], object], offset: int) -> Callable[[int], object]:
    """`command` numbering its records from `offset`, so rounds never reuse an email."""
    return lambda i: command(offset + i)


def plain_note(plain: PlainApp) -> Callable[[int], object]:
    """One command of the baseline: create an aggregate, save its one event."""
    return lambda i: plain.save(Note(text=f"note {i}"))


def our_lead(crm: CRM) -> Callable[[int], object]:
    """One command of ours: capture a lead (validation, metadata, one event)."""
    return lambda i: crm.capture_lead(
        channel="web_form", name=f"Lead {i}", email=f"lead{i}@example.com", region="east"
    )


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
    print(f"{'app':<6} {'writers':>7} {'commands/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    plain_rates = {t: r["rate"] for app, t, r in rows if app == "plain"}
    for app, threads, r in rows:
        ratio = r["rate"] / plain_rates[threads]
        print(
            f"{app:<6} {threads:>7} {r['rate']:>11.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
            f"{ratio:>6.2f}"
        )


if __name__ == "__main__":
    main()
