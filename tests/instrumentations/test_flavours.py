"""Any app, whatever its instrumentation: the real `openai` client instrumented by each major GenAI
instrumentation package (installed from PyPI), against a local mock upstream, non-streamed and streamed,
exported over OTLP into the native stack. Every LLM span comes out priced exactly as genai-prices prices the
usage it carries, non-LLM spans are untouched, and the PII in the captured prompt reaches no export."""

from __future__ import annotations

import json
import math
import subprocess
import uuid
from typing import Any

import pytest
from faker import Faker
from genai_prices import Usage, calc_price

from tests.instrumentations.flavours import APP, CACHE, REQUIREMENTS, flavour_python
from tests.instrumentations.mock_openai import MockOpenAI
from tests.stack_support import NativeStack, read_jsonl, wait_for

pytestmark = pytest.mark.e2e

# Read independently of processors/cost/usage.py: what each flavour is known to write (its docs / source).
INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")


def _value(v: dict[str, Any]) -> Any:
    for kind in ("intValue", "doubleValue", "stringValue", "boolValue"):
        if kind in v:
            return int(v[kind]) if kind == "intValue" else v[kind]
    return v


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in span.get("attributes", [])}


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((attrs[n] for n in names if n in attrs), None)


def _service_spans(path: Any, service: str) -> list[dict[str, Any]]:
    out = []
    for req in read_jsonl(path):
        for rs in req.get("resourceSpans", []):
            res = {a["key"]: _value(a["value"]) for a in rs.get("resource", {}).get("attributes", [])}
            if res.get("service.name") == service:
                for ss in rs.get("scopeSpans", []):
                    out.extend(ss.get("spans", []))
    return out


@pytest.mark.parametrize("flavour", list(REQUIREMENTS))
def test_flavour_is_priced_and_redacted(native_stack: NativeStack, flavour: str) -> None:
    python = flavour_python(flavour)
    fake = Faker()
    fake.seed_instance(uuid.uuid4().int)
    email = fake.email()
    card = fake.credit_card_number(card_type="visa16")
    prompt = f"My e-mail is {email} and my card is {card}. Explain telemetry in one line."
    service = f"flavour-{flavour}-{uuid.uuid4().hex[:8]}"
    with MockOpenAI() as upstream:
        run = subprocess.run(
            [
                str(python),
                str(APP),
                flavour,
                upstream.base_url,
                f"http://{native_stack.otlp_grpc}",
                native_stack.info["urls"]["otlp_http"],
                service,
                prompt,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, f"{flavour} app failed:\n{run.stdout}\n{run.stderr[-4000:]}"

    def llm_spans() -> list[dict[str, Any]]:
        spans = _service_spans(native_stack.traces_file, service)
        return [s for s in spans if _first(_attrs(s), INPUT) is not None] if len(spans) >= 2 else []

    priced = wait_for(llm_spans, 60, f"{flavour}'s LLM spans in the export")
    # what each flavour recorded, for docs/instrumentations.md
    (CACHE / f"last-{flavour}.json").write_text(
        json.dumps([{"name": s["name"], **_attrs(s)} for s in priced], indent=1, default=str)
    )
    for span in priced:
        attrs = _attrs(span)
        assert attrs.get("gen_ai.cost.status") == "priced", (flavour, span["name"], attrs)
        cache_read = _first(attrs, CACHE_READ) or 0
        usage = Usage(
            input_tokens=int(_first(attrs, INPUT)),
            output_tokens=int(_first(attrs, OUTPUT) or 0),
            cache_read_tokens=int(cache_read) or None,
        )
        model = str(_first(attrs, MODEL))
        expected = float(calc_price(usage, model_ref=model, provider_id="openai").total_price)
        assert math.isclose(float(attrs["gen_ai.usage.cost"]), expected, rel_tol=1e-9), (flavour, attrs)
        if "gen_ai.cost.reported" in attrs:  # the app's own price is kept aside, never summed
            assert flavour == "openlit", attrs
    for span in _service_spans(native_stack.traces_file, service):
        attrs = _attrs(span)
        if _first(attrs, INPUT) is None and "gen_ai.cost.reported" not in attrs:
            assert not any(k.startswith("gen_ai.cost.") for k in attrs), (flavour, span["name"], attrs)

    exported = native_stack.traces_file.read_bytes() + (
        native_stack.logs_file.read_bytes() if native_stack.logs_file.exists() else b""
    )
    for secret in (email, card, json.dumps(email)[1:-1]):
        assert secret.encode() not in exported, f"{flavour}: {secret!r} reached the export files"
