"""HTTP read latency under a steady command load, real PostgreSQL.

Run: `.venv/bin/python -m bench.api_load [--seconds S] [--read-rate R] [--workers N]
[--database-url URL]` (without a URL an embedded PostgreSQL is started in a temp dir). Starts
`crm api` (one worker process unless `--workers`) and
`crm projections run` as subprocesses, seeds customers and tickets, then for each read route
sends requests at a fixed rate (open loop: latency counts from the scheduled send time, so a slow
server cannot hide queueing) while a second load issues commands at `--command-rate`. The
first `--warmup` seconds of each load are sent but not counted. Prints p50/p99/max latency
and errors per route (`--per-second`: each second's too). Target: p99 <= 25 ms at 300 req/s
for single-record reads.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import psycopg

from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.services import EmbeddedPostgres, create_database, drop_database
from infra.settings import Settings
from infra.users import UserStore

PASSWORD = "bench-password"


@dataclass
class Load:
    """Latencies (seconds) and errors of one fixed-rate load, and when each request was due
    (seconds from the load's start)."""

    latencies: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, latency: float, ok: bool, due: float = 0.0) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.due.append(due)
            if not ok:
                self.errors += 1

    def after(self, seconds: float) -> Load:
        """The requests due after the first `seconds` (the warm-up left out)."""
        kept = Load()
        for latency, due in zip(self.latencies, self.due, strict=True):
            if due >= seconds:
                kept.latencies.append(latency)
                kept.due.append(due)
        kept.errors = self.errors
        return kept

    def per_second(self) -> list[tuple[int, int, float, float]]:
        """(second, requests, p50 ms, p99 ms) for each second of the load."""
        seconds: dict[int, list[float]] = {}
        for latency, due in zip(self.latencies, self.due, strict=True):
            seconds.setdefault(int(due), []).append(latency)
        return [
            (second, len(lat), statistics.median(lat) * 1000, _p99(sorted(lat)) * 1000)
            for second, lat in sorted(seconds.items())
        ]

    def figures(self) -> dict[str, float]:
        flat = sorted(self.latencies) or [0.0]
        return {
            "n": len(self.latencies),
            "p50": statistics.median(flat) * 1000,
            "p99": _p99(flat) * 1000,
            "max": flat[-1] * 1000,
            "errors": self.errors,
        }


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


Request = Callable[[], tuple[str, str, bytes | None]]  # method, path, JSON body


class Connection:
    """One keep-alive HTTP/1.1 connection; a minimal client so the load costs little CPU."""

    def __init__(self, host: str, port: int, authorization: str) -> None:
        self.host, self.port, self.authorization = host, port, authorization
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, method: str, path: str, body: bytes | None) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: {self.authorization}\r\n"
        )
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def fixed_rate(
    base: str, authorization: str, rate: float, seconds: float, request: Request, load: Load
) -> None:
    """Send `rate` requests/s for `seconds` over a pool of connections (open loop)."""
    url = httpx.URL(base)
    pool = [
        Connection(url.host, url.port or 80, authorization) for _ in range(max(8, int(rate / 10)))
    ]
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in pool:
        free.put_nowait(connection)
    loop = asyncio.get_running_loop()

    async def one(scheduled: float) -> None:
        connection = await free.get()
        method, path, body = request()
        try:
            ok = (await connection.send(method, path, body)) < 400
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            connection.close()
            connection.reader = connection.writer = None
            ok = False
        free.put_nowait(connection)
        load.record(loop.time() - scheduled, ok, scheduled - start)

    start = loop.time()
    tasks = []
    for n in range(int(rate * seconds)):
        scheduled = start + n / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    for connection in pool:
        connection.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its worker processes have used so far, from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    workers = [int(c) for c in children.read_text().split()] if children.exists() else []
    return _own_cpu_seconds(pid) + sum(_own_cpu_seconds(w) for w in workers)


def _own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sequential(
    base: str, authorization: str, count: int, request: Request, pid: int
) -> tuple[float, float, int]:
    """`count` requests one after another: wall ms and server CPU ms per request, and errors.

    Server CPU per request is what limits the rate one worker sustains, and unlike latency it
    hardly moves when other processes load the machine.
    """
    url = httpx.URL(base)
    connection = Connection(url.host, url.port or 80, authorization)
    errors = 0
    try:
        for _ in range(max(1, count // 10)):  # warm up
            await connection.send(*request())
        cpu, started = cpu_seconds(pid), time.perf_counter()
        for _ in range(count):
            errors += (await connection.send(*request())) >= 400
        wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    finally:
        connection.close()
    return wall / count * 1000, cpu / count * 1000, errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(database_url: str, data_dir: Path, workers: int = 1) -> Iterator[tuple[str, int]]:
    """`crm api` (`workers` processes) and `crm projections run` against `database_url`."""
    port = free_port()
    env = {
        **os.environ,
        "CRM_DATABASE_URL": database_url,
        "CRM_NATS_URL": "nats://127.0.0.1:1",
        "CRM_DATA_DIR": str(data_dir),
        "CRM_TOKEN_SECRET": "bench-" + "x" * 40,
        "CRM_LOG_LEVEL": "warning",
        "CRM_HTTP_ACCESS_LOG": "false",
    }
    crm = [sys.executable, "-m", "infra.cli"]
    processes = [
        subprocess.Popen([*crm, "api", "--port", str(port), "--workers", str(workers)], env=env),
        subprocess.Popen([*crm, "projections", "run"], env=env, stdout=subprocess.DEVNULL),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1.0).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base, processes[0].pid
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def seed(database_url: str, customers: int, tickets: int) -> tuple[list[UUID], list[UUID]]:
    settings = Settings(customer_snapshot_interval=0)
    migrate(settings, database_url)
    crm = build_crm(settings, database_url)
    try:
        UserStore(crm.recorder.datastore).create(  # type: ignore[attr-defined]
            "bench", PASSWORD, "admin", replace=True
        )
        customer_ids = [
            crm.register_customer(
                kind="company", name=f"Customer {n}", region="east", owner="bench"
            ).id
            for n in range(customers)
        ]
        ticket_ids = [
            crm.open_ticket(
                customer_id=random.choice(customer_ids),
                channel="email",
                subject=f"Ticket {n}",
                description="printer on fire",
                category="hardware",
                priority=random.choice(["P1", "P2", "P3", "P4"]),
            ).id
            for n in range(tickets)
        ]
        return customer_ids, ticket_ids
    finally:
        crm.close()


def wait_until_caught_up(base: str, headers: dict[str, str], timeout: float = 600.0) -> None:
    """Loads start once every read model has processed the seeded history."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(base + "/health", timeout=5.0).json()
        if "max lag 0 events" in health["checks"].get("projections", {}).get("detail", ""):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the read models did not catch up with the seeded history: {health}")


def analyze(database_url: str) -> None:
    """Planner statistics for the seeded rows, as autovacuum keeps them in a running system
    (it may not have come by in the seconds since seeding)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


Figures = dict[str, float]


def bench(
    database_url: str, args: argparse.Namespace
) -> tuple[list[tuple[str, float, Figures]], list[tuple[str, tuple[float, float, int]]]]:
    customer_ids, _ = seed(database_url, args.customers, args.tickets)
    rows: list[tuple[str, float, Figures]] = []
    costs: list[tuple[str, tuple[float, float, int]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="crm-bench-api-") as data_dir,
        server(database_url, Path(data_dir), args.workers) as (base, pid),
    ):
        token = httpx.post(
            base + "/auth/token", data={"username": "bench", "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        counter = iter(range(10**9))
        wait_until_caught_up(base, headers)
        analyze(database_url)

        def command() -> tuple[str, str, bytes | None]:
            tag = f'{{"tag": "t{next(counter) % 50}"}}'.encode()
            return "POST", f"/customers/{random.choice(customer_ids)}/tags", tag

        def customer_360() -> tuple[str, str, bytes | None]:
            return "GET", f"/customers/{random.choice(customer_ids)}", None

        def sla_board() -> tuple[str, str, bytes | None]:
            return "GET", "/sla/board?limit=50", None

        authorization = f"Bearer {token}"
        for name, request in (
            ("GET /customers/{id}", customer_360),
            ("GET /sla/board?limit=50", sla_board),
            ("POST /customers/{id}/tags", command),
        ):
            if args.sequential:
                cost = asyncio.run(sequential(base, authorization, args.sequential, request, pid))
                costs.append((name, cost))
        for name, rate, request in (
            ("GET /customers/{id}", args.read_rate, customer_360),
            ("GET /sla/board", args.board_rate, sla_board),
        ):
            if not args.seconds:
                break
            if not rate and name != "GET /customers/{id}":
                continue  # --board-rate 0: no second load (--read-rate 0 measures commands alone)
            commands, reads = Load(), Load()
            duration = args.warmup + args.seconds

            async def both(
                rate: float = rate,
                duration: float = duration,
                request: Request = request,
                commands: Load = commands,
                reads: Load = reads,
            ) -> None:
                await asyncio.gather(
                    fixed_rate(base, authorization, args.command_rate, duration, command, commands),
                    fixed_rate(base, authorization, rate, duration, request, reads),
                )

            # The load generator is Python too: a full collection of its heap (it imports the
            # whole app) would stall its sends and count as server latency. Not during loads.
            gc.collect()
            gc.freeze()
            gc.disable()
            try:
                asyncio.run(both())
            finally:
                gc.enable()
            commands, reads = commands.after(args.warmup), reads.after(args.warmup)
            rows.append((name, rate, reads.figures()))
            rows.append((f"  POST tags (during {name})", args.command_rate, commands.figures()))
            if args.per_second:
                print(f"{name} at {rate:.0f}/s, per second: (second, requests, p50 ms, p99 ms)")
                for second, n, p50, p99 in reads.per_second():
                    print(f"  {second:3d} {n:5d} {p50:8.1f} {p99:8.1f}")
    return rows, costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each load")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds of each load sent first and not counted (the server's pools grow, "
        "its statements get prepared)",
    )
    parser.add_argument(
        "--per-second", action="store_true", help="also print each second's p50 and p99"
    )
    parser.add_argument("--read-rate", type=float, default=300.0, help="GET /customers/{id} per s")
    parser.add_argument("--board-rate", type=float, default=100.0, help="GET /sla/board per s")
    parser.add_argument("--command-rate", type=float, default=100.0, help="commands per s")
    parser.add_argument("--workers", type=int, default=1, help="API worker processes")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument(
        "--sequential",
        type=int,
        default=1000,
        help="first send this many requests of each kind one at a time (0: skip)",
    )
    parser.add_argument("--database-url", help="server URL (default: embedded PostgreSQL)")
    args = parser.parse_args()
    # The seeding process, the API and the projections must read personal data with one key.
    os.environ.setdefault("CRM_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    pg: EmbeddedPostgres | None = None
    server_url = args.database_url
    if server_url is None:
        pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="crm-bench-")) / "pg")
        server_url = pg.start()
    name = f"crm_bench_api_{secrets.token_hex(4)}"
    try:
        rows, costs = bench(create_database(server_url, name), args)
    finally:
        drop_database(server_url, name)
        if pg is not None:
            pg.stop()
    if costs:
        print(f"{'sequential':<40} {'n':>6} {'wall ms':>7} {'cpu ms':>7} {'errors':>6}")
        for label, (wall, cpu, errors) in costs:
            print(f"{label:<40} {args.sequential:>6} {wall:>7.2f} {cpu:>7.2f} {errors:>6}")
    if not rows:
        return
    print(
        f"{'load':<40} {'req/s':>6} {'n':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'errors':>6}"
    )
    for label, rate, f in rows:
        print(
            f"{label:<40} {rate:>6.0f} {f['n']:>6.0f} {f['p50']:>7.2f} {f['p99']:>7.2f} "
            f"{f['max']:>7.1f} {f['errors']:>6.0f}"
        )


if __name__ == "__main__":
    main()
