"""The sidecar's config file: ``server``, ``cost`` and ``redaction`` sections, validated at start."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from processors.config_loader import ConfigError, build
from processors.cost.config import CostConfig, ModelPriceOverride
from processors.redaction.config import RedactionConfig

MESSAGE_MIB_ENV = "SIDECAR_MAX_MESSAGE_MIB"
"""The one value the Collector's message limits come from (docs/collector.md); the sidecar's forward limit
defaults to it."""


def _forward_default() -> int:
    raw = os.environ.get(MESSAGE_MIB_ENV, "").strip()
    if not raw:
        return 16 * 1024 * 1024
    if not raw.isdigit() or not 1 <= int(raw) <= 2047:
        raise ConfigError(MESSAGE_MIB_ENV, f"expected a whole number of MiB, 1-2047, got {raw!r}")
    return int(raw) * 1024 * 1024


@dataclass
class ServerConfig:
    """gRPC serving and forwarding limits."""

    max_message_bytes: int = 64 * 1024 * 1024
    """Largest accepted Export request; larger ones get RESOURCE_EXHAUSTED. Above what the Collector's
    exporter sends the sidecar (its batches plus one item up to the ingest receivers' limits)."""
    forward_max_message_bytes: int = field(default_factory=_forward_default)
    """Largest message forwarded to the Collector's internal receiver: the same value as that receiver's
    ``max_recv_msg_size_mib`` (default: ``$SIDECAR_MAX_MESSAGE_MIB`` MiB, else 16 MiB). A processed batch
    above it is split by resource, scope and item; one item above it on its own is truncated field by field,
    with a marker."""
    max_attempts_per_batch: int = 5
    """Attempts of a batch that fails in a way that may be its own (processing error, a worker killed,
    still too large) before it is quarantined to the dead-letter directory."""
    dead_letter_dir: str | None = None
    """Where quarantined batches are written (PII at rest: mode 0700/0600). Null: $SIDECAR_DEAD_LETTER_DIR,
    else $XDG_STATE_HOME/llm-otel-sidecar/dead-letter."""
    dead_letter_max_bytes: int = 1024 * 1024 * 1024
    """Size cap of the dead-letter directory; beyond it a batch is refused (UNAVAILABLE) instead."""
    forward_timeout_seconds: float = 10.0
    """Upper bound for one forward to the Collector (the caller's deadline, if shorter, wins)."""
    max_concurrent_batches: int = 16
    """Batches processed/forwarded at once (with --workers N: by all workers together); more wait up to
    ``queue_wait_seconds``."""
    queue_wait_seconds: float = 1.0
    """How long a batch may wait for a free slot before it is refused with UNAVAILABLE (overloaded)."""
    drain_timeout_seconds: float = 25.0
    """On SIGTERM, how long in-flight batches may take to finish."""

    def validate(self, path: str) -> None:
        if self.max_message_bytes < 1024:
            raise ConfigError(f"{path}.max_message_bytes", "must be at least 1024")
        if self.forward_max_message_bytes < 64 * 1024:
            raise ConfigError(f"{path}.forward_max_message_bytes", "must be at least 65536 (64 KiB)")
        if self.forward_max_message_bytes > 2**31 - 1:
            raise ConfigError(f"{path}.forward_max_message_bytes", "must be below 2 GiB (gRPC's largest)")
        if self.max_concurrent_batches < 1:
            raise ConfigError(f"{path}.max_concurrent_batches", "must be at least 1")
        if not 1 <= self.max_attempts_per_batch <= 1000:
            raise ConfigError(f"{path}.max_attempts_per_batch", "must be between 1 and 1000")
        if self.dead_letter_max_bytes < self.max_message_bytes:
            raise ConfigError(
                f"{path}.dead_letter_max_bytes", "must be at least server.max_message_bytes (one batch)"
            )
        if self.dead_letter_dir is not None and not self.dead_letter_dir.strip():
            raise ConfigError(f"{path}.dead_letter_dir", "must be a directory path or null")
        for name in ("forward_timeout_seconds", "queue_wait_seconds", "drain_timeout_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{path}.{name}", f"must be a positive number, got {value!r}")


@dataclass
class SidecarConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    """gRPC limits."""
    cost: CostConfig = field(default_factory=CostConfig)
    """Token cost enrichment (traces)."""
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    """PII redaction (traces, logs and metrics)."""

    def price_overrides(self) -> list[ModelPriceOverride]:
        """Inline overrides followed by those of ``cost.overrides_file``."""
        overrides = list(self.cost.overrides)
        if self.cost.overrides_file:
            path = Path(self.cost.overrides_file)
            try:
                data = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError("cost.overrides_file", f"cannot load {str(path)!r}: {exc}") from exc
            if data is None:
                data = []
            if not isinstance(data, list):
                raise ConfigError("cost.overrides_file", "must hold a YAML list of model overrides")
            overrides += [
                build(ModelPriceOverride, item, f"cost.overrides_file[{i}]") for i, item in enumerate(data)
            ]
        return overrides


def load_config(path: str | None) -> SidecarConfig:
    """Load and validate; defaults when ``path`` is None. Raises ConfigError naming the bad field."""
    if path is None:
        return SidecarConfig()
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path!r} is not valid YAML: {exc}") from exc
    return build(SidecarConfig, data, "")
