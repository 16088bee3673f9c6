"""The worker side of ``--workers N``: a worker exits when its front dies (the real processes:
test_process.py)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from processors import workers


def test_a_worker_exits_and_removes_the_fronts_hand_files_once_the_pipe_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "_HAND_DIR", str(tmp_path))
    front_pid = os.getpid()  # alive (as a zombie front would look): removed because it is named
    other_front = tmp_path / f"{workers._HAND_PREFIX}{os.getppid()}-0.in"  # another live sidecar's
    mine = [tmp_path / f"{workers._HAND_PREFIX}{front_pid}-{i}.{ext}" for i, ext in ((0, "in"), (1, "out"))]
    for path in (other_front, *mine):
        path.write_bytes(b"unredacted")
    reader, writer = multiprocessing.get_context("spawn").Pipe(duplex=False)
    exits: list[int] = []
    watch = threading.Thread(target=workers._exit_when_front_dies, args=(reader, front_pid, exits.append))
    watch.start()
    watch.join(0.3)
    assert watch.is_alive() and not exits  # the front is alive: the worker keeps working
    assert all(path.exists() for path in mine)
    writer.close()  # what the kernel does when the front dies
    watch.join(5)
    assert not watch.is_alive()
    assert exits == [1]
    assert not any(path.exists() for path in mine)
    assert other_front.exists()
