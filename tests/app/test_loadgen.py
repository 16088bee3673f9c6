"""The load generator: synthetic PII that detectors will recognise, and a run against a served gateway."""

from __future__ import annotations

import io
import random
import re

import pytest

from app.loadgen.__main__ import parse_args
from app.loadgen.prompts import PII_KINDS, fake_pii, make_prompt
from app.loadgen.runner import LoadConfig, LoadGenerator
from tests.app.conftest import GatewayFactory


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def test_fake_pii_looks_real() -> None:
    rng = random.Random(0)
    for _ in range(200):
        assert re.fullmatch(r"[a-zü]+\.[a-zü]+\d+@[a-z.]+", fake_pii("email", rng))
        card = fake_pii("credit_card", rng)
        assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}|3[47]\d\d \d{6} \d{5}", card) and luhn_ok(card)
        assert re.match(
            r"^(sk-proj-[A-Za-z0-9]{40}|AKIA[A-Z0-9]{16}|ghp_[A-Za-z0-9]{36})$", fake_pii("api_key", rng)
        )
        assert re.match(r"^\+\d", fake_pii("phone", rng))
    with pytest.raises(ValueError):
        fake_pii("ssn", rng)


def test_pii_rate_is_honoured_and_seeded() -> None:
    always = [make_prompt(random.Random(i), 1.0) for i in range(50)]
    never = [make_prompt(random.Random(i), 0.0) for i in range(50)]
    assert all(p.pii_kinds and set(p.pii_kinds) <= set(PII_KINDS) for p in always)
    assert not any(p.pii_kinds for p in never)
    assert make_prompt(random.Random(7), 0.5) == make_prompt(random.Random(7), 0.5)
    rng = random.Random(3)
    share = sum(bool(make_prompt(rng, 0.2).pii_kinds) for _ in range(2000)) / 2000
    assert share == pytest.approx(0.2, abs=0.03)


def test_cli_validates_arguments() -> None:
    config, quiet = parse_args(
        ["--rate", "3", "--duration", "2", "--tenants-keys", "a,b", "--models", "m1,m2"]
    )
    assert config.api_keys == ("a", "b") and config.models == ("m1", "m2") and not quiet
    for bad in (["--pii-rate", "2"], ["--rate", "0"], ["--concurrency", "0"], ["--stream-share", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


async def test_run_against_a_gateway_counts_everything(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {
            "providers": {"s": {"type": "simulated", "error_rate_429": 0.2, "error_rate_disconnect": 0.1}},
            "tenants": [{"name": "a", "keys": ["ka"]}, {"name": "b", "keys": ["kb"]}],
        }
    )
    progress = io.StringIO()
    config = LoadConfig(
        base_url=gw.base_url,
        rate=60,
        duration_s=4.0,  # ~240 scheduled: >= 40 sent even when a loaded machine runs it at a quarter speed
        concurrency=8,
        api_keys=("ka", "kb"),
        pii_rate=0.3,
        stream_share=0.5,
        seed=2,
        feedback_share=0.5,
    )
    summary = await LoadGenerator(config, progress=progress).run()
    assert summary["requests"] == summary["ok"] + sum(summary["errors"].values())
    assert summary["requests"] >= 40
    assert summary["errors"].get("429", 0) > 0
    assert summary["errors"].get("stream_broken", 0) + summary["errors"].get("502", 0) > 0
    assert summary["streamed"] > 0 and summary["pii_prompts"] > 0 and summary["feedback_sent"] > 0
    assert "[loadgen]" in progress.getvalue()
    spans = gw.captured.genai_spans()
    assert len(spans) == summary["requests"]
    assert {s.attributes["llm_gateway.tenant"] for s in spans} == {"a", "b"}
    ok_out = sum(
        s.attributes.get("gen_ai.usage.output_tokens", 0) for s in spans if "error.type" not in s.attributes
    )
    assert ok_out == summary["completion_tokens"]


def test_every_pii_value_the_load_generator_makes_is_redacted_by_the_sidecar() -> None:
    # the demo's redaction figures are only honest if what the load generator calls PII is PII to the sidecar
    from processors.config import SidecarConfig
    from processors.redaction.scanner import PiiScanner

    scanner = PiiScanner(SidecarConfig().redaction)
    rng = random.Random(1)
    for kind in PII_KINDS:
        for _ in range(100):
            value = fake_pii(kind, rng)
            text = f"Suggest three names for a CLI tool. The {kind} on file is {value}."
            hits = scanner.candidate_hits([text]).get(0, {})
            result = scanner.redact_text(text, hits.keys(), hits)
            assert result is not None and value not in result[0], (kind, value)
