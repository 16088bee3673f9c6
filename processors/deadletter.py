"""The dead-letter directory: batches (or single items) the sidecar will not forward and must not drop.

A batch that fails the same way on every attempt would otherwise be retried forever by the Collector and hold
one of its exporter's consumers, and with a few such batches the whole queue behind them. After
``server.max_attempts_per_batch`` attempts (or at once, for what can never succeed) the sidecar writes the
batch here and answers OK with a ``partial_success`` that names it, so the queue moves on.

The files hold **unredacted telemetry (PII at rest)**: the directory is created mode 0700, every file 0600,
and nothing here is ever sent to a backend. Each file is one Export{Trace,Logs,Metrics}ServiceRequest in
protobuf, exactly the bytes the sidecar received, named
``<signal>-<reason>-<sha256 of the bytes, 32 hex>.pb`` — so writing the same batch twice (a retry) keeps
one file. Replay after a fix by POSTing a file to the Collector's OTLP/HTTP receiver:
``curl --data-binary @FILE -H 'Content-Type: application/x-protobuf' http://127.0.0.1:4318/v1/<signal>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "SIDECAR_DEAD_LETTER_DIR"


def default_directory() -> Path:
    """$SIDECAR_DEAD_LETTER_DIR, else $XDG_STATE_HOME (~/.local/state)/llm-otel-sidecar/dead-letter."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "llm-otel-sidecar" / "dead-letter"


class DeadLetterFull(OSError):
    """Writing would exceed ``server.dead_letter_max_bytes``: the batch is refused (retryable) instead."""


@dataclass(frozen=True)
class Written:
    path: Path
    new: bool
    """False when the same bytes were already there (a retry of a batch written before)."""


class DeadLetter:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.split_progress = SplitProgress(directory)
        self._lock = threading.Lock()
        self._used: int | None = None

    def _ensure(self) -> int:
        if self._used is None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            self._used = sum(p.stat().st_size for p in self.directory.glob("*.pb"))
        return self._used

    def write(self, signal: str, reason: str, data: bytes) -> Written:
        """Store ``data`` durably (written, fsynced, renamed into place). Raises OSError / DeadLetterFull."""
        name = f"{signal}-{reason}-{hashlib.sha256(data).hexdigest()[:32]}.pb"
        path = self.directory / name
        with self._lock:
            used = self._ensure()
            if path.exists():
                return Written(path, new=False)
            if used + len(data) > self.max_bytes:
                raise DeadLetterFull(
                    f"dead-letter directory {self.directory} holds {used} bytes; {len(data)} more would "
                    f"exceed server.dead_letter_max_bytes={self.max_bytes}"
                )
            tmp = self.directory / f".{name}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._used = used + len(data)
        return Written(path, new=True)


class SplitProgress:
    """What was already forwarded of a split batch, kept on disk next to the dead letters, so that a retry
    after the sidecar was killed half way forwards only the rest (no duplicates). One small JSON file per
    batch (``.split/<sha256>.json``: the item keys and partial-success counts, no telemetry), written after
    every part, removed when the batch is answered OK."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory / ".split"

    def _path(self, fingerprint: bytes) -> Path:
        return self._dir / f"{fingerprint.hex()}.json"

    def load(self, fingerprint: bytes) -> tuple[list[tuple[int, ...]], int, list[str]] | None:
        try:
            data = json.loads(self._path(fingerprint).read_text())
            return [tuple(k) for k in data["done"]], int(data["rejected"]), list(data["messages"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(
        self, fingerprint: bytes, done: Iterable[tuple[int, ...]], rejected: int, messages: list[str]
    ) -> None:
        with contextlib.suppress(OSError):  # without it a crash half way may duplicate: at least once
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self._path(fingerprint)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"done": sorted(done), "rejected": rejected, "messages": messages}))
            os.replace(tmp, path)

    def drop(self, fingerprint: bytes) -> None:
        with contextlib.suppress(OSError):
            self._path(fingerprint).unlink()


class InFlight:
    """Which batches the sidecar process was working on when it died, across restarts.

    Bounded attempts in memory cannot see a batch that kills the whole process (a crash in a C extension, the
    OOM killer): after each restart the Collector sends it again and the process dies again. So every batch
    leaves a marker file (``.inflight/<key>-<pid>-<n>``, empty, removed when it is answered) next to the
    dead letters; at start, the markers of a dead process count one crash for their key in ``.crashes``, and
    a batch whose key crashed the process ``max_attempts_per_batch - 1`` times is quarantined unprocessed.
    The key hashes the length and sampled bytes (``key``): cheap on every batch; two batches of the same
    length and the same samples would share a count — at worst a batch quarantined early (kept, not lost)."""

    _KEEP = 1000  # crash counts remembered

    def __init__(self, directory: Path) -> None:
        self._dir = directory / ".inflight"
        self._counts_path = directory / ".crashes"
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        self.crashes: dict[str, int] = self._load()
        self._collect()

    @staticmethod
    def key(data: bytes) -> str:
        """A hash of the length and of 34 KB sampled from the whole batch (its first and last 8 KB, 16
        strided 1 KB windows): ~20 µs, where hashing a 1.4 MB batch whole takes 1.5-4 ms."""
        n = len(data)
        h = hashlib.blake2b(n.to_bytes(8, "little"), digest_size=12)
        h.update(data[:8192])
        h.update(data[-8192:])
        step = max(n // 16, 1)
        for at in range(0, n, step):
            h.update(data[at : at + 1024])
        return h.hexdigest()

    def _load(self) -> dict[str, int]:
        try:
            counts = json.loads(self._counts_path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}

    def _collect(self) -> None:
        """Count a crash for every marker a dead process left behind."""
        changed = False
        for marker in self._dir.iterdir():
            key, _, rest = marker.name.partition("-")
            pid = rest.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                continue  # another live sidecar's (a second instance on the same directory)
            self.crashes[key] = self.crashes.get(key, 0) + 1
            changed = True
            with contextlib.suppress(OSError):
                marker.unlink()
        if changed:
            self._save()

    def _save(self) -> None:
        keep = dict(list(self.crashes.items())[-self._KEEP :])
        tmp = self._counts_path.with_name(f".crashes.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(keep))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._counts_path)

    def enter(self, key: str) -> Path:
        marker = self._dir / f"{key}-{os.getpid()}-{next(self._seq)}"
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return marker

    def leave(self, marker: Path | None, key: str) -> None:
        if marker is not None:
            with contextlib.suppress(OSError):
                marker.unlink()
        if key in self.crashes:  # it went through (or was quarantined) this time
            with self._lock:
                self.crashes.pop(key, None)
                with contextlib.suppress(OSError):
                    self._save()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
