"""Scale-out on one machine: the chart's two-tier topology as native processes (tests/deploy/scale_out.py):
one load-balancing Collector in front of two gateway-tier Collector + sidecar pairs, each with its own sink.

* every span of a trace lands on one gateway-tier instance;
* the sidecars' cost counters, summed over both instances, equal the summed gen_ai.usage.cost of the spans
  delivered (and per instance, too);
* SIGKILLing one gateway-tier instance (Collector and sidecar together) under load, twice, loses no span the
  load-balancing tier acknowledged.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.scale_out import (
    Batch,
    Delivered,
    SendStats,
    Topology,
    delivered,
    make_batch,
    send,
)
from tests.stack_support import wait_for

# The gateway tier exactly as the chart configures it (templates/gateway-tier.yaml): config.yaml alone, which
# batches in the exporters' persistent queues (an acknowledged span is on disk).
CHART_GATEWAY_OVERLAYS: tuple[Path, ...] = ()


@pytest.fixture
def topology(collector_bin: Path, tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(tmp_path, gateways=2, overlays=CHART_GATEWAY_OVERLAYS)
    try:
        topo.start()
        yield topo
    except BaseException:
        print(topo.logs_tail())
        raise
    finally:
        topo.stop()


def _wait_delivered(topo: Topology, stats: SendStats, timeout: float = 90) -> list[Delivered]:
    """What each sink holds once every acknowledged span has arrived (or the timeout passed)."""
    result: list[Delivered] = []

    def all_there() -> bool:
        nonlocal result
        result = [delivered(s.traces_file) for s in topo.sinks]
        got = set().union(*(d.span_ids for d in result))
        return stats.acked_span_ids <= got

    with contextlib.suppress(AssertionError):  # the assertions below say what is missing
        wait_for(all_there, timeout, "every acknowledged span to reach a sink", interval=1.0)
    return result


@pytest.mark.e2e
def test_traces_stay_on_one_instance_and_cost_counters_sum_to_span_costs(topology: Topology) -> None:
    rng = random.Random(13)
    batches = [make_batch(rng, 20) for _ in range(60)]
    sent_traces = {t for b in batches for t in b.trace_ids}
    stats = send(topology.entry, batches, in_flight=4)
    assert stats.failed_requests == 0, stats.errors
    assert len(stats.acked_span_ids) == 4 * len(sent_traces) == 4800

    deliveries = _wait_delivered(topology, stats)
    got = set().union(*(d.span_ids for d in deliveries))
    assert stats.acked_span_ids - got == set()

    # trace affinity: each trace's spans all on exactly one instance, complete there
    owners: dict[str, list[int]] = {}
    for i, d in enumerate(deliveries):
        for trace_id, spans in d.by_trace.items():
            owners.setdefault(trace_id, []).append(i)
            assert len(spans) == 4, f"trace {trace_id} has {len(spans)} of its 4 spans on instance {i}"
    split = {t: o for t, o in owners.items() if len(o) > 1}
    assert not split, f"{len(split)} traces are split over instances, e.g. {next(iter(split.items()))}"
    assert set(owners) == sent_traces
    per_instance = [len(d.by_trace) for d in deliveries]
    assert min(per_instance) >= 0.3 * len(sent_traces), per_instance  # both instances do real work

    # cost: each sidecar's counter equals the cost on the spans its instance delivered
    span_costs = [d.cost for d in deliveries]
    assert all(c > 0 for c in span_costs)

    def counters_match() -> list[float] | None:
        counters = [p.cost_counter() for p in topology.pairs]
        ok = all(math.isclose(c, s, rel_tol=1e-9) for c, s in zip(counters, span_costs, strict=True))
        return counters if ok else None

    try:
        wait_for(counters_match, 30, "the sidecars' cost counters to reach the delivered spans' cost")
    finally:
        counters = [p.cost_counter() for p in topology.pairs]
        print(f"span cost per instance {span_costs}, cost counters {counters}")
    assert math.isclose(sum(counters), sum(span_costs), rel_tol=1e-9)


@pytest.mark.load
def test_killing_a_gateway_instance_under_load_loses_no_acknowledged_span(topology: Topology) -> None:
    rng = random.Random(29)
    victim = topology.pairs[1]
    duration = 16.0
    end = time.monotonic() + duration
    kills: list[float] = []
    chaos_errors: list[BaseException] = []

    def traffic() -> Iterator[Batch]:
        while time.monotonic() < end:
            yield make_batch(rng, 10)

    def chaos() -> None:
        try:
            for at in (4.0, 10.0):
                time.sleep(max(0.0, end - duration + at - time.monotonic()))
                victim.kill()  # SIGKILL Collector and sidecar: no shutdown, no flush
                kills.append(time.monotonic())
                time.sleep(1.5)
                victim.start()
        except BaseException as exc:  # surfaced by the assertion below
            chaos_errors.append(exc)

    chaos_thread = threading.Thread(target=chaos, name="chaos")
    chaos_thread.start()
    stats = send(topology.entry, traffic(), in_flight=8)
    chaos_thread.join(60)
    assert not chaos_errors, chaos_errors
    assert len(kills) == 2
    assert stats.acked_spans > 20_000, f"too little load to mean anything: {stats.acked_spans} spans"

    deliveries = _wait_delivered(topology, stats)
    got = set().union(*(d.span_ids for d in deliveries))
    missing = stats.acked_span_ids - got
    records = sum(d.records for d in deliveries)
    print(
        f"acknowledged {len(stats.acked_span_ids)} spans, refused requests {stats.failed_requests} "
        f"{stats.errors}, delivered {records} span records ({records - len(got)} duplicates), "
        f"missing {len(missing)}"
    )
    assert not missing, f"{len(missing)} of {len(stats.acked_span_ids)} acknowledged spans were lost"
    # the victim kept working between and after the kills, so it really was killed under load
    assert len(deliveries[1].by_trace) >= 0.2 * len({s for d in deliveries for s in d.by_trace})
