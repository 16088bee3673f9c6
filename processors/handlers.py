"""The two thin signal handlers: parse, run the processors, decide whether the original bytes can go."""

from __future__ import annotations

from typing import cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import SidecarConfig
from processors.cost import CostStats, enrich_costs
from processors.forwarding import Processed, parse_or_reject
from processors.pii_scanner import PiiScanner
from processors.pricing import PriceBook
from processors.redaction import RedactionStats, redact_logs, redact_traces
from processors.telemetry import Telemetry

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
_USAGE_MARKER = b"gen_ai.usage."


class Pipeline:
    """Processors built once from the validated config (building them can raise ConfigError)."""

    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.prices = PriceBook(config.cost, config.price_overrides())
        self.scanner = PiiScanner(config.redaction)

    def process_traces(self, raw: bytes) -> Processed:
        request = cast(
            ExportTraceServiceRequest,
            parse_or_reject(ExportTraceServiceRequest.FromString, raw, "ExportTraceServiceRequest"),
        )
        items = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        cost: CostStats | None = None
        redaction: RedactionStats | None = None
        if self.config.cost.enabled and _USAGE_MARKER in raw:
            cost = enrich_costs(request, self.prices)
        if self.config.redaction.enabled and self.scanner.gate(raw):
            redaction = redact_traces(request, self.scanner, self.config.redaction)
        changed = (cost is not None and cost.changed) or (redaction is not None and redaction.changed)
        # an unchanged batch is forwarded as the bytes we received: no re-serialisation
        payload = request.SerializeToString() if changed else raw
        return Processed(payload, items, _metrics_recorder("traces", cost, redaction))

    def process_logs(self, raw: bytes) -> Processed:
        request = cast(
            ExportLogsServiceRequest,
            parse_or_reject(ExportLogsServiceRequest.FromString, raw, "ExportLogsServiceRequest"),
        )
        items = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        redaction: RedactionStats | None = None
        if self.config.redaction.enabled and self.scanner.gate(raw):
            redaction = redact_logs(request, self.scanner, self.config.redaction)
        payload = request.SerializeToString() if redaction is not None and redaction.changed else raw
        return Processed(payload, items, _metrics_recorder("logs", None, redaction))


def _metrics_recorder(signal: str, cost: CostStats | None, redaction: RedactionStats | None):  # type: ignore[no-untyped-def]
    if (cost is None or not cost.changed) and (redaction is None or not redaction.changed):
        return None

    def record(telemetry: Telemetry) -> None:
        if redaction is not None:
            for pii_type, count in redaction.by_type.items():
                telemetry.redactions.add(count, {"signal": signal, "pii.type": pii_type})
        if cost is not None:
            for (provider, model), group in cost.cost_by_model.items():
                telemetry.add_cost(provider, model, group.total, group.trace_id, group.span_id)
            for model, count in cost.unpriced_by_model.items():
                telemetry.unpriced.add(count, {"gen_ai.response.model": model})

    return record
