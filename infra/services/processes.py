"""Small process, port and lock helpers shared by the embedded servers."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL and nats-server do: connections of a stopped server lingering in
        # TIME_WAIT must not make its port look taken (it would move to a new port).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def port_frees_up(port: int, timeout: float = 3.0) -> bool:
    """Whether `port` is or becomes free within `timeout` (a killed server's threads linger)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` itself listens on TCP `port` (not some other server there)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock on `path` so two processes never start one server twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (zombies count as dead, after reaping them if they are our children)."""
    _reap(pid)
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` is gone; False if it is still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages that point at the cause."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no log at {path}: {error.strerror})"


def _reap(pid: int) -> None:
    # A server we spawned ourselves stays a zombie until we collect it, and would look alive.
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
