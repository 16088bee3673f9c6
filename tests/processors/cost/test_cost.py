"""Cost enrichment: equality with genai-prices, attribute rules, provider map, overrides."""

from __future__ import annotations

import math
import warnings

import genai_prices
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.cost.config import CostConfig, ModelPriceOverride
from processors.cost.enrichment import enrich_costs
from processors.cost.prices import PriceBook
from tests.processors.helpers import span, span_attrs, trace_request

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-opus-4-1"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("mistral", "mistral-large-latest"),
    ("deepseek", "deepseek-chat"),
]


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(CostConfig(), [])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.sampled_from(MODELS),
    input_tokens=st.integers(0, 400_000),
    output_tokens=st.integers(0, 64_000),
    cache_read_share=st.floats(0, 1),
    cache_write_share=st.floats(0, 1),
)
def test_total_equals_calc_price(
    book: PriceBook,
    model: tuple[str, str],
    input_tokens: int,
    output_tokens: int,
    cache_read_share: float,
    cache_write_share: float,
) -> None:
    provider, name = model
    cache_read = int(input_tokens * cache_read_share)
    cache_write = int((input_tokens - cache_read) * cache_write_share)
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache_read:
        usage["cache_read_tokens"] = cache_read
    if cache_write:
        usage["cache_write_tokens"] = cache_write
    resolved = book.lookup(provider, name)
    assert resolved is not None, f"{provider}/{name} should be priced by genai-prices"
    ours = resolved.cost(usage)
    assert ours is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = genai_prices.calc_price(genai_prices.Usage(**usage), name, provider_id=provider)
    assert abs(ours.total - float(reference.total_price)) <= 1e-12
    assert abs(ours.input - float(reference.input_price)) <= 1e-12
    assert abs(ours.output - float(reference.output_price)) <= 1e-12


def test_enriched_span_total_matches_calc_price(book: PriceBook) -> None:
    req = trace_request(
        span(
            "chat",
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": 250_000,  # above the 200k tier threshold
                "gen_ai.usage.output_tokens": 3000,
                "gen_ai.usage.cache_read.input_tokens": 100_000,
                "gen_ai.usage.cache_creation.input_tokens": 20_000,
            },
        )
    )
    enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    usage = genai_prices.Usage(
        input_tokens=250_000, output_tokens=3000, cache_read_tokens=100_000, cache_write_tokens=20_000
    )
    ref = genai_prices.calc_price(usage, "claude-sonnet-4-5", provider_id="anthropic")
    assert abs(float(got["gen_ai.usage.cost"]) - float(ref.total_price)) <= 1e-12  # type: ignore[arg-type]
    assert got["gen_ai.cost.status"] == "priced"
    assert got["gen_ai.cost.pricing"] == f"genai-prices-{genai_prices.__version__}"


def test_provider_map_semconv_names(book: PriceBook) -> None:
    assert book.provider_id("gcp.gemini") == "google"
    assert book.provider_id("gcp.vertex_ai") == "google"
    assert book.provider_id("aws.bedrock") == "aws"
    assert book.provider_id("azure.ai.openai") == "azure"
    assert book.provider_id("x_ai") == "x-ai"
    resolved = book.lookup("gcp.gemini", "gemini-2.5-flash")
    assert resolved is not None and resolved.provider_id == "google"


def test_unpriced_model_gets_status_not_zero(book: PriceBook) -> None:
    req = trace_request(
        span("chat", {"gen_ai.request.model": "no-such-model-123", "gen_ai.usage.input_tokens": 5}),
    )
    stats = enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert got["gen_ai.cost.status"] == "unpriced"
    assert "gen_ai.usage.cost" not in got
    assert stats.unpriced_by_model == {"no-such-model-123": 1}


def test_inconsistent_usage_is_unpriced_not_negative(book: PriceBook) -> None:
    req = trace_request(
        span(
            "chat",
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.cache_read.input_tokens": 50,  # more cached than input: invalid
            },
        )
    )
    enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert got["gen_ai.cost.status"] == "unpriced"
    assert "gen_ai.usage.cost" not in got


def test_spans_without_usage_untouched(book: PriceBook) -> None:
    plain = span("b", {"gen_ai.request.model": "gpt-4o", "http.route": "/x", "llm.model_name": "gpt-4o"})
    req = trace_request(plain)
    before = req.SerializeToString()
    stats = enrich_costs(req, book)
    assert req.SerializeToString() == before
    assert not stats.changed


def test_app_reported_cost_is_kept_aside_and_the_pipeline_price_exported(book: PriceBook) -> None:
    """OpenLIT prices spans itself: the pipeline's price replaces it (the counter sums only its own)."""
    priced = span(
        "a",
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1_000_000,
            "gen_ai.usage.cost": 9.0,
            "gen_ai.cost.input": 1.0,
        },
    )
    req = trace_request(priced)
    stats = enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    keys = [kv.key for kv in req.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert len(keys) == len(set(keys)), keys  # no duplicate keys
    assert got["gen_ai.cost.reported"] == 9.0
    assert got["gen_ai.usage.cost"] == pytest.approx(2.5)  # gpt-4o: $2.50 per million input tokens
    assert got["gen_ai.cost.status"] == "priced"
    assert stats.cost_by_model[("openai", "gpt-4o")].total == pytest.approx(2.5)


def test_a_cost_without_usage_is_not_exported_as_if_counted(book: PriceBook) -> None:
    req = trace_request(span("a", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.cost": 3.0}))
    stats = enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert "gen_ai.usage.cost" not in got and got["gen_ai.cost.reported"] == 3.0
    assert got["gen_ai.cost.status"] == "unpriced" and got["gen_ai.cost.unpriced_reason"] == "no_usage"
    assert stats.unpriced_by_reason == {("gpt-4o", "no_usage"): 1}


def test_a_span_priced_twice_gets_one_set_of_cost_attributes(book: PriceBook) -> None:
    req = trace_request(
        span(
            "a",
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 7,
            },
        )
    )
    enrich_costs(req, book)
    once = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    enrich_costs(req, book)
    keys = [kv.key for kv in req.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert len(keys) == len(set(keys)), keys
    assert span_attrs(req.resource_spans[0].scope_spans[0].spans[0]) == once


FLAVOURS: dict[str, dict[str, object]] = {
    "semconv": {
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1500,
        "gen_ai.usage.output_tokens": 120,
        "gen_ai.usage.cache_read.input_tokens": 1024,
    },
    "semconv_deprecated": {
        "gen_ai.system": "openai",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 1500,
        "gen_ai.usage.completion_tokens": 120,
        "gen_ai.usage.cache_read_input_tokens": 1024,
    },
    "openinference": {
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": 1500,
        "llm.token_count.completion": 120,
        "llm.token_count.prompt_details.cache_read": 1024,
        "llm.token_count.total": 1620,
    },
    "litellm": {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 1500,
        "gen_ai.usage.completion_tokens": 120,
        "gen_ai.usage.cache_read_input_tokens": 1024,
        "llm.usage.total_tokens": 1620,
    },
}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_flavour_prices_the_same_call_the_same(book: PriceBook, flavour: str) -> None:
    req = trace_request(span("chat gpt-4o-mini", FLAVOURS[flavour]))
    enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1500, output_tokens=120, cache_read_tokens=1024),
        model_ref="gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert got["gen_ai.cost.status"] == "priced"
    assert got["gen_ai.usage.cost"] == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize(
    ("tokens", "reason"),
    [
        (-5, "negative_tokens"),
        (1.7e308, "too_many_tokens"),
        (float("inf"), "non_finite_tokens"),
        (float("nan"), "non_finite_tokens"),
        (12.5, "fractional_tokens"),
        (10**12, "too_many_tokens"),
        ("many", "non_numeric_tokens"),
        ("١٢٣", "non_numeric_tokens"),  # Arabic-Indic digits: not a count an instrumentation writes
    ],
)
def test_invalid_usage_is_unpriced_with_a_reason(book: PriceBook, tokens: object, reason: str) -> None:
    req = trace_request(
        span(
            "chat",
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": tokens,
            },
        )
    )
    stats = enrich_costs(req, book)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert got["gen_ai.cost.status"] == "unpriced"
    assert got["gen_ai.cost.unpriced_reason"] == f"{reason}:gen_ai.usage.input_tokens"
    assert "gen_ai.usage.cost" not in got
    assert not stats.cost_by_model


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
    )
)
def test_cost_is_finite_and_non_negative_for_any_usage(book: PriceBook, tokens: object) -> None:
    req = trace_request(
        span(
            "chat",
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.output_tokens": tokens,
            },
        )
    )
    stats = enrich_costs(req, book)
    for group in stats.cost_by_model.values():
        assert math.isfinite(group.total) and group.total >= 0
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    if "gen_ai.usage.cost" in got:
        assert math.isfinite(float(got["gen_ai.usage.cost"]))


def test_response_model_preferred_and_request_model_fallback(book: PriceBook) -> None:
    req = trace_request(
        span(
            "a",
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1_000_000,
            },
        )
    )
    enrich_costs(req, book)
    cost = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])["gen_ai.usage.cost"]
    assert cost == pytest.approx(0.15)  # gpt-4o-mini input price, not gpt-4o's


def test_override_wins_over_genai_prices() -> None:
    override = ModelPriceOverride(model="gpt-4o", provider="openai", input_per_mtok=1.0, output_per_mtok=2.0)
    book = PriceBook(CostConfig(), [override])
    resolved = book.lookup("openai", "GPT-4o")
    assert resolved is not None and resolved.source == "override"
    cost = resolved.cost({"input_tokens": 1_000_000, "output_tokens": 500_000})
    assert cost is not None and cost.total == pytest.approx(2.0)
    assert book.version.endswith("+overrides")


def test_override_cache_prices_and_alias() -> None:
    override = ModelPriceOverride(
        model="local-llm",
        aliases=["llm-alias"],
        input_per_mtok=1.0,
        output_per_mtok=2.0,
        cache_read_per_mtok=0.1,
        cache_write_per_mtok=1.5,
    )
    book = PriceBook(CostConfig(), [override])
    resolved = book.lookup("anything", "llm-alias")
    assert resolved is not None
    cost = resolved.cost(
        {"input_tokens": 3_000_000, "cache_read_tokens": 1_000_000, "cache_write_tokens": 1_000_000}
    )
    assert cost is not None
    assert cost.total == pytest.approx(1.0 + 0.1 + 1.5)
    assert cost.cache_read == pytest.approx(0.1) and cost.cache_write == pytest.approx(1.5)


def test_usage_with_more_cached_than_input_tokens_is_not_priced(book: PriceBook) -> None:
    resolved = book.lookup("anthropic", "claude-sonnet-4-5")
    assert resolved is not None
    assert resolved.cost({"input_tokens": 10, "cache_read_tokens": 20}) is None
    assert resolved.cost({"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 6}) is None
    assert resolved.cost({"input_tokens": 12, "cache_read_tokens": 6, "cache_write_tokens": 6}) is not None


@pytest.mark.parametrize("pii_first", [True, False])
def test_a_span_with_its_own_cost_is_repriced_and_still_redacted(pii_first: bool) -> None:
    """OpenLIT's spans carry gen_ai.usage.cost; repricing rewrites their attributes, which must not shift the
    redaction walk off the attribute the raw scan found (an e-mail once reached the exports this way)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from processors.config import SidecarConfig
    from processors.handlers import Pipeline

    usage: dict[str, object] = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1_000_000,
        "gen_ai.usage.cost": 9.0,
        "gen_ai.cost.status": "app",
    }
    content = {"gen_ai.input.messages": "mail me at dora.lee@example.org please"}
    attributes = {**content, **usage} if pii_first else {**usage, **content}
    raw = trace_request(span("chat", attributes)).SerializeToString()
    payload, _, _, _, _ = Pipeline(SidecarConfig()).trace_parts(raw)
    assert payload is not None
    out = ExportTraceServiceRequest.FromString(payload)
    got = span_attrs(out.resource_spans[0].scope_spans[0].spans[0])
    keys = [kv.key for kv in out.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert b"dora.lee@example.org" not in payload
    assert got["gen_ai.input.messages"] == "mail me at <EMAIL> please"
    assert len(keys) == len(set(keys)), keys
    assert got["gen_ai.usage.cost"] == pytest.approx(2.5)
    assert got["gen_ai.cost.status"] == "priced"
    assert "gen_ai.cost.reported" not in got  # the span said it was priced by a pipeline: no app cost
