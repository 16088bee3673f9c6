"""The real ``python -m processors`` process: config errors at start, SIGTERM drain, --workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.workers import _HAND_DIR, _HAND_PREFIX
from tests.processors.helpers import Client, Sink, span, trace_request

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)}


@contextmanager
def sidecar_process(forward_port: int, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "processors",
            "--listen",
            f"127.0.0.1:{port}",
            "--forward",
            f"127.0.0.1:{forward_port}",
            *extra,
        ],
        env=_env(),
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_serving(port, proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def _wait_serving(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"sidecar exited early with {proc.returncode}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.1)
        raise AssertionError("sidecar did not become SERVING")
    finally:
        channel.close()


def _run_with_config(cfg: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "processors", "--config", str(cfg)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def test_bad_config_exits_nonzero_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("redaction:\n  custom_patterns:\n    - name: bad\n      regex: '(unclosed'\n")
    result = _run_with_config(cfg)
    assert result.returncode == 2
    assert b"redaction.custom_patterns[0].regex" in result.stderr
    cfg.write_text("server:\n  max_mesage_bytes: 10\n")
    result = _run_with_config(cfg)
    assert result.returncode == 2
    assert b"server.max_mesage_bytes" in result.stderr


def test_sigterm_drains_in_flight_batch_and_exits_zero(sink: Sink) -> None:
    sink.delay_s = 1.5  # the forward is still running when SIGTERM arrives
    with sidecar_process(sink.port) as (proc, port):
        client = Client(port)
        status = _send_then_sigterm(
            proc, client, trace_request(span("in-flight", {"k": "v"})), exit_within=20
        )
        client.close()
    assert status == "OK"
    assert len(sink.traces) == 1


def _worker_pids(front: int) -> list[int]:
    """The --workers processes: children of the front started by multiprocessing's spawn."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == front and b"spawn_main" in cmdline:
            pids.append(int(entry))
    return pids


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _busy_batch(i: int) -> ExportTraceServiceRequest:
    text = " ".join(f"user{i}-{j}@mail.example call +49 30 1234{j:04d}" for j in range(3000))
    return trace_request(span(f"s{i}", {"gen_ai.input.messages": text}))


def test_workers_share_one_connection_and_stop_on_sigterm(sink: Sink) -> None:
    with sidecar_process(sink.port, "--workers", "2") as (proc, port):
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2
        before = {pid: _cpu_ticks(pid) for pid in workers}
        client = Client(port)  # ONE channel, one HTTP/2 connection, like the Collector's exporter
        errors: list[BaseException] = []

        def send(k: int) -> None:
            try:
                for i in range(k, 40, 4):
                    client.traces(_busy_batch(i), timeout=30)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        # both worker processes did part of the work arriving over the one connection
        assert all(_cpu_ticks(pid) > before[pid] for pid in workers)
        # errors raised in a worker come back as the same statuses as in one process
        with pytest.raises(grpc.RpcError) as bad:
            client.traces(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid ExportTraceServiceRequest" in (bad.value.details() or "")
        sink.delay_s = 1.0  # a batch is still being forwarded when SIGTERM arrives: it must finish
        request = trace_request(span("last", {"mail": "x@y.example"}))
        status = _send_then_sigterm(proc, client, request, exit_within=30)
        client.close()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert status == "OK"
    assert len(sink.traces) == 41
    assert all(b"@mail.example" not in raw and b"x@y.example" not in raw for raw in sink.traces)


def test_lost_worker_answers_unavailable_never_forwards_unredacted_and_recovers(sink: Sink) -> None:
    with sidecar_process(sink.port, "--workers", "2") as (proc, port):
        client = Client(port)
        client.traces(trace_request(span("warm", {"mail": "x@y.example"})), timeout=10)
        for pid in _worker_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        codes = []
        for i in range(50):  # bounded: the pool is rebuilt within a few seconds
            try:
                client.traces(trace_request(span(f"after{i}", {"mail": "x@y.example"})), timeout=10)
                codes.append("OK")
                break
            except grpc.RpcError as err:
                codes.append(err.code().name)
                time.sleep(0.2)
        assert codes[-1] == "OK", codes
        assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
        assert len(_worker_pids(proc.pid)) == 2
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert len(sink.traces) == 2  # the warm-up batch and the first OK after the restart
    assert all(b"x@y.example" not in raw for raw in sink.traces)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may reap it a little later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_exit_when_the_front_is_killed(sink: Sink) -> None:
    """kill -9 of the front (no drain, no pool shutdown): its workers, which ignore SIGTERM, must not live
    on. A batch in a worker at that moment was never acknowledged (the front answers OK only after the
    forward), so the caller gets an error and retries; its unredacted hand file in /dev/shm is removed by
    the exiting worker."""

    with sidecar_process(sink.port, "--workers", "2") as (proc, port):
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2
        hand_files = f"{_HAND_PREFIX}{proc.pid}-*"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        pending = export.future(_busy_batch(0).SerializeToString(), timeout=30)
        deadline = time.monotonic() + 10
        while not list(Path(_HAND_DIR).glob(hand_files)) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert list(Path(_HAND_DIR).glob(hand_files)), "the batch never reached the worker pool"
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in workers if _running(pid)]
        for pid in left:  # do not leave them behind for the next tests
            os.kill(pid, signal.SIGKILL)
        assert not left, f"worker(s) {left} outlived the front by 5 s"
        with pytest.raises(grpc.RpcError):
            pending.result(timeout=10)
        channel.close()
        assert not list(Path(_HAND_DIR).glob(hand_files))
    assert sink.traces == []


def _send_then_sigterm(
    proc: subprocess.Popen[bytes], client: Client, request: ExportTraceServiceRequest, exit_within: float
) -> object:
    """Send one batch; SIGTERM the sidecar while it is being forwarded; the process must exit 0.
    Returns "OK" or the gRPC status code the client got."""
    outcome: dict[str, object] = {}

    def send() -> None:
        try:
            client.traces(request, timeout=10)
            outcome["status"] = "OK"
        except grpc.RpcError as err:
            outcome["status"] = err.code()

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    sender.join(15)
    assert proc.wait(exit_within) == 0
    return outcome.get("status")


def test_a_batch_in_flight_at_every_crash_is_quarantined_unprocessed(
    sink: Sink, dead_letter_dir: Path
) -> None:
    """A batch that kills the whole process would be retried after every restart, forever: the in-flight
    markers count the crashes across restarts, and the 5th attempt (server.max_attempts_per_batch) is
    quarantined without being processed."""
    sink.delay_s = 20  # the forward hangs: the batch is in flight when the process is killed
    raw = trace_request(span("crasher", {"x": 1})).SerializeToString()
    for _ in range(4):
        with sidecar_process(sink.port) as (proc, port):
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            call = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=None,
            )
            pending = call.future(raw, timeout=60)
            deadline = time.monotonic() + 20
            while not list((dead_letter_dir / ".inflight").glob("*")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert list((dead_letter_dir / ".inflight").glob("*")), "no in-flight marker"
            proc.kill()
            proc.wait(10)
            with pytest.raises(grpc.RpcError):
                pending.result(timeout=10)
            channel.close()
    sink.delay_s = 0
    with sidecar_process(sink.port) as (_proc, port):
        client = Client(port)
        response = client.traces(raw, timeout=20)
        innocent = client.traces(trace_request(span("innocent", {})), timeout=20)
        client.close()
    assert response.partial_success.rejected_spans == 1
    assert "crashed_sidecar" in response.partial_success.error_message
    assert innocent.partial_success.rejected_spans == 0
    (kept,) = dead_letter_dir.glob("traces-crashed_sidecar-*.pb")
    assert kept.read_bytes() == raw
    assert not list((dead_letter_dir / ".inflight").glob("*"))


def test_a_split_batch_half_forwarded_when_the_sidecar_dies_is_not_duplicated(
    sink: Sink, tmp_path: Path
) -> None:
    """Part 2 of 3 fails, the sidecar is then killed (its memory is gone); the retry after the restart
    forwards only what had not been acknowledged: the progress is on disk."""
    config = tmp_path / "sidecar.yaml"
    config.write_text("server:\n  forward_max_message_bytes: 2097152\n")
    batch = trace_request(*(span(f"big-{i}", {"m": "word " * 3300}, i=i) for i in range(300)))
    sink.fail_at = {2}
    with sidecar_process(sink.port, "--config", str(config)) as (proc, port):
        client = Client(port)
        with pytest.raises(grpc.RpcError) as err:
            client.traces(batch, timeout=60)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        client.close()
        proc.kill()
        proc.wait(10)
    with sidecar_process(sink.port, "--config", str(config)) as (_proc, port):
        client = Client(port)
        client.traces(batch, timeout=60)
        client.close()
    names = [
        s.name
        for raw in sink.traces
        for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert sorted(names) == sorted(f"big-{i}" for i in range(300))  # each exactly once
