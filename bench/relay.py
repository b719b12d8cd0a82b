"""Event relay: drain rate of a 100,000-event backlog and commit→JetStream-ack lag under load.

Run: `.venv/bin/python -m bench.relay [--events N] [--rate R] [--seconds S]`. Starts embedded
PostgreSQL and two embedded nats-servers in a temp dir: one with `sync_interval: always` (what
the CRM runs, ADR 0008) and one with the server's default (fsync every 2 minutes), and measures
on each, in the same run, the raw nats-py `publish_async` rate as the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import nats
from nats.js.api import DeliverPolicy, StreamConfig

from domain.application import CRM
from domain.customer import Customer
from domain.shared import event_id_for
from infra.persistence import event_store_env, migrate
from infra.relay import Relay, RelayConfig, RelayRunner, relay_status
from infra.services import EmbeddedNats, EmbeddedPostgres, create_database
from infra.settings import Settings

EVENTS_PER_SAVE = 2_000
TAGS_PER_CUSTOMER = 99  # with its registration: 100 events per customer


def seed(crm: CRM, events: int) -> float:
    """Append `events` events through the domain, many per save; returns events/s."""
    started = time.perf_counter()
    written = 0
    while written < events:
        batch = []
        for _ in range(EVENTS_PER_SAVE // (TAGS_PER_CUSTOMER + 1)):
            customer = Customer.register(
                customer_id=uuid.uuid4(), kind="company", name="Acme", region="east", owner="u:1"
            )
            for n in range(TAGS_PER_CUSTOMER):
                customer.tag(f"tag-{n}")
            batch.append(customer)
        crm.save(*batch)
        written += sum(c.version for c in batch)
    return written / (time.perf_counter() - started)


def drain(crm: CRM, database_url: str, nats_url: str, stream: str) -> float:
    """Start a relay on the backlog; messages/s until it has published the whole log."""
    config = RelayConfig(stream=stream, subject_prefix="crm")
    relay = Relay(crm, database_url, nats_url, config)
    head = crm.recorder.max_notification_id() or 0
    with RelayRunner(relay):
        started = time.perf_counter()
        while relay_status(crm, stream).position < head:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    return relay.stored / elapsed


def raw_ceiling(nats_url: str, messages: int, size: int) -> float:
    """nats-py `publish_async` of same-size messages with Nats-Msg-Id, 1,000 in flight."""

    async def run() -> float:
        nc = await nats.connect(nats_url)
        js = nc.jetstream(publish_async_max_pending=1000)
        await js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"], duplicate_window=120))
        payload = b"x" * size
        started = time.perf_counter()
        futures = [
            await js.publish_async("raw.x", payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
            for _ in range(messages)
        ]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        await js.delete_stream("RAW")
        await nc.close()
        return messages / elapsed

    return asyncio.run(run())


def steady_lag(
    crm: CRM, database_url: str, nats_url: str, rate: int, seconds: float
) -> tuple[float, float, int]:
    """Commands at `rate`/s with a live relay; p50/p99 ms from commit to arrival in the stream."""
    committed: dict[str, float] = {}
    arrived: dict[str, float] = {}  # kept apart: an ack can beat the command's own bookkeeping
    ready, done = threading.Event(), threading.Event()

    async def consume() -> None:
        nc = await nats.connect(nats_url)
        sub = await nc.jetstream().subscribe(
            "crm.customer.tagged", ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        ready.set()
        while not done.is_set():
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            if msg.headers and "Nats-Msg-Id" in msg.headers:
                arrived[msg.headers["Nats-Msg-Id"]] = time.perf_counter()
        await nc.close()

    customer = crm.register_customer(kind="company", name="Live", region="east", owner="u:1").id
    consumer = threading.Thread(target=lambda: asyncio.run(consume()))
    with RelayRunner(Relay(crm, database_url, nats_url, RelayConfig())):
        consumer.start()
        ready.wait(10)
        time.sleep(1.0)
        total = int(rate * seconds)
        started = time.perf_counter()
        for i in range(total):
            result = crm.tag_customer(customer, f"live-{i}")
            committed[str(event_id_for(result.id, result.version))] = time.perf_counter()
            time.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
        time.sleep(2.0)
        done.set()
        consumer.join(10)
    ordered = sorted(arrived[i] - at for i, at in committed.items() if i in arrived)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, len(ordered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="backlog to drain")
    parser.add_argument("--rate", type=int, default=200, help="steady commands per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the steady phase")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="crm-bench-relay-"))
    postgres = EmbeddedPostgres(base / "pg")
    durable = EmbeddedNats(base / "nats-always", sync_interval="always")
    relaxed = EmbeddedNats(base / "nats-default", sync_interval="2m")
    try:
        database_url = create_database(postgres.start(), "bench_relay")
        settings = Settings(db_pool_size=4, customer_snapshot_interval=0)
        migrate(settings, database_url)
        crm = CRM(env=event_store_env(settings, database_url))
        print(f"seeded {args.events:,} events at {seed(crm, args.events):,.0f} events/s")
        payload = 420  # bytes: about one tagged customer's CloudEvent
        rows = []
        for name, server in (("sync always", durable), ("sync 2m", relaxed)):
            url = server.start()
            ceiling = raw_ceiling(url, 20_000, payload)
            rate = drain(crm, database_url, url, "CRM" if server is durable else "CRM_RELAXED")
            rows.append((name, rate, ceiling))
        p50, p99, n = steady_lag(crm, database_url, durable.start(), args.rate, args.seconds)
        crm.close()
    finally:
        durable.stop()
        relaxed.stop()
        postgres.stop()
    print(f"{'nats-server':<12} {'relay drain msg/s':>18} {'raw publish msg/s':>18} {'ratio':>6}")
    for name, rate, ceiling in rows:
        print(f"{name:<12} {rate:>18,.0f} {ceiling:>18,.0f} {rate / ceiling:>6.2f}")
    print(f"steady {args.rate} commands/s (sync always): {n} events, commit→stream lag")
    print(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
