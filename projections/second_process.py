"""A rebuild's second process: it replays the log into some of the new versions beside ours.

A rebuild is CPU-bound in Python, so one process uses one core. The first process reads the
log once and sends the second one the pages of the events its read models handle (the log's
read costs the database as much again per reader); each process decodes and applies its own.
The second process is a fresh interpreter (`python -c`) that imports only what a replay needs:
multiprocessing's spawn would import the parent's main module (the CLI, the API) too, and
forking a process with threads is unsafe. Everything crosses pickled: on its stdin the
arguments, then the pages; on its stdout the outcome.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import IO, Any, BinaryIO, Protocol
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

from projections.catalog import read_model
from projections.catchup import EventFailed
from projections.readmodel import ReadModelProjection, ReadModelView
from projections.replay import Page, replay

_MAIN = "from projections.second_process import main; main()"


class App(Protocol):
    """What the second process needs of the application: its log and its mapper."""

    recorder: ApplicationRecorder
    mapper: Mapper[Any]

    def close(self) -> None: ...


class SecondProcess:
    """Replays into `views` ((read model, version) pairs) in a process of its own, built on
    `app_class(env=env)`, from the pages given to `send` (those of `topics`' events);
    `result()` waits for it and raises what made it fail."""

    def __init__(
        self,
        app_class: type[App],
        env: dict[str, str],
        views: list[tuple[str, int]],
        topics: Sequence[str],
    ) -> None:
        self.topics = frozenset(topics)
        path = os.pathsep.join(os.path.abspath(p or os.curdir) for p in sys.path)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]
        self.gone = False  # it stopped reading: it failed, and says why in `result()`
        try:
            self._send((app_class, env, views))
        except BaseException:  # not even started (e.g. an app class that cannot be pickled)
            self.process.kill()
            self.process.wait()
            raise

    def send(self, page: Page) -> None:
        """Send the notifications of a page it needs (it reads until a page at the head)."""
        head, notifications, position = page
        rows = [
            (n.id, n.originator_id.bytes, n.originator_version, n.topic, n.state)  # type: ignore[union-attr]
            for n in notifications
            if n.topic in self.topics
        ]
        self._send((head, rows, position))

    def result(self) -> int:
        """The position the second process's read models ended at."""
        if not self.stdin.closed:
            try:
                self.stdin.close()
            except BrokenPipeError:
                pass
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        with stdout:
            try:
                outcome, value = pickle.load(stdout)
            except EOFError:
                outcome, value = "failed", None
        code = self.process.wait()
        if outcome == "done":
            return int(value)
        raise value if isinstance(value, Exception) else ReplayFailed(f"exit status {code}")

    def _send(self, message: Any) -> None:
        if self.gone:
            return
        try:
            pickle.dump(message, self.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.stdin.flush()
        except BrokenPipeError:
            self.gone = True

    def __enter__(self) -> SecondProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.poll() is None and error is not None:
            self.process.kill()  # our side failed: its rows would never be switched to
        self.process.wait()


def main() -> None:
    """The second process: read the arguments, replay the pages sent, write the outcome."""
    source, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries the outcome only
    app_class, env, views = pickle.load(source)
    try:
        outcome: tuple[str, Any] = ("done", replay_into(app_class(env=env), views, source))
    except EventFailed as error:
        outcome = ("failed", error)
    except Exception as error:  # it might not pickle: its description crosses instead
        outcome = ("failed", ReplayFailed(f"{type(error).__name__}: {error}"))
    pickle.dump(outcome, out)
    out.flush()


def replay_into(app: App, views: list[tuple[str, int]], source: BinaryIO) -> int:
    """`replay` into these versions of these read models, of the pages read from `source`."""
    try:
        datastore = app.recorder.datastore  # type: ignore[attr-defined]
        projections: list[ReadModelProjection] = []
        for name, version in views:
            spec = read_model(name)
            view: ReadModelView = spec.view(datastore, version)
            projections.append(spec.projection(view=view))
        return replay(projections, app.recorder, app.mapper, pages=_pages(source))
    finally:
        app.close()


def _pages(source: BinaryIO) -> Iterator[Page]:
    """The pages `SecondProcess.send` sent, up to the one at the head."""
    position = 0
    while True:
        try:
            head, rows, new_position = pickle.load(source)
        except EOFError:
            raise ReplayFailed("the rebuild stopped before the head of the log") from None
        if position >= head:
            return
        notifications = [
            Notification(
                id=notification_id,
                originator_id=UUID(bytes=originator_id),
                originator_version=version,
                topic=topic,
                state=state,
            )
            for notification_id, originator_id, version, topic, state in rows
        ]
        yield head, notifications, new_position
        position = new_position


class ReplayFailed(Exception):
    """The second process of a rebuild failed (its error, described)."""
