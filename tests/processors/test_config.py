"""Config validation: every error names its field; CLI flags win over env."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.cli import parse_args
from processors.config import load_config
from processors.config_loader import ConfigError
from processors.handlers import Pipeline


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("bogus: 1\n", "bogus"),
        ("server:\n  max_message_bytes: 10\n", "server.max_message_bytes"),
        ("server:\n  forward_timeout_seconds: -1\n", "server.forward_timeout_seconds"),
        ("server:\n  forward_max_message_bytes: 1000\n", "server.forward_max_message_bytes"),
        ("server:\n  max_attempts_per_batch: 0\n", "server.max_attempts_per_batch"),
        ("server:\n  dead_letter_max_bytes: 1024\n", "server.dead_letter_max_bytes"),
        ("server:\n  dead_letter_dir: ' '\n", "server.dead_letter_dir"),
        ("cost:\n  enabled: maybe\n", "cost.enabled"),
        (
            "cost:\n  overrides:\n    - model: m\n      input_per_mtok: -2\n",
            "cost.overrides[0].input_per_mtok",
        ),
        ("cost:\n  overrides:\n    - input_per_mtok: 1\n", "cost.overrides[0].model"),
        ("redaction:\n  types:\n    emial: false\n", "redaction.types.emial"),
        ("redaction:\n  mode: hash\n", "redaction.mode"),
        ("redaction:\n  placeholder_format: '<{kind}>'\n", "redaction.placeholder_format"),
        (
            "redaction:\n  custom_patterns:\n    - name: x\n      regex: '[a-'\n",
            "redaction.custom_patterns[0].regex",
        ),
        (
            "redaction:\n  custom_patterns:\n    - name: Bad Name\n      regex: a\n",
            "redaction.custom_patterns[0].name",
        ),
        ("redaction:\n  fields:\n    span_event: true\n", "redaction.fields.span_event"),
        ("redaction:\n  mode: hmac\n  hmac_key_env: NO_SUCH_ENV_VAR_XYZ\n", "redaction.hmac_key_env"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        Pipeline(load_config(str(path)))
    assert err.value.field == field
    assert field in str(err.value)


def test_hyperscan_rejected_pattern_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("redaction:\n  custom_patterns:\n    - name: backref\n      regex: '(a)\\1(?<=x)b'\n")
    try:
        Pipeline(load_config(str(path)))
    except ConfigError as err:  # Hyperscan may or may not accept it in prefilter mode; if not, say where
        assert err.field == "redaction.custom_patterns[0].regex"


def test_overrides_file(tmp_path: Path) -> None:
    overrides = tmp_path / "prices.yaml"
    overrides.write_text("- model: house-llm\n  input_per_mtok: 1\n  output_per_mtok: 2\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"cost:\n  overrides_file: {overrides}\n")
    pipeline = Pipeline(load_config(str(path)))
    assert pipeline.prices.lookup("", "house-llm") is not None
    overrides.write_text("- model: house-llm\n  input_per_mtk: 1\n")
    with pytest.raises(ConfigError) as err:
        Pipeline(load_config(str(path)))
    assert err.value.field == "cost.overrides_file[0].input_per_mtk"


def test_flags_win_over_env_and_env_over_defaults() -> None:
    env = {"SIDECAR_LISTEN": "127.0.0.1:5000", "SIDECAR_FORWARD": "127.0.0.1:6000", "SIDECAR_WORKERS": "3"}
    opts = parse_args(["--listen", "127.0.0.1:7000"], env)
    assert (opts.listen, opts.forward, opts.workers) == ("127.0.0.1:7000", "127.0.0.1:6000", 3)
    opts = parse_args([], {})
    assert (opts.listen, opts.forward, opts.workers, opts.config) == (
        "127.0.0.1:4319",
        "127.0.0.1:14317",
        1,
        None,
    )
    with pytest.raises(SystemExit):
        parse_args([], {"SIDECAR_WORKERS": "zero"})


def test_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "processors" / "sidecar.example.yaml"
    pipeline = Pipeline(load_config(str(example)))
    assert pipeline.prices.lookup("vllm", "llama-70b") is not None


def test_forward_limit_defaults_to_the_collectors_one_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIDECAR_MAX_MESSAGE_MIB", "8")
    assert load_config(None).server.forward_max_message_bytes == 8 * 1024 * 1024
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  forward_max_message_bytes: 4194304\n")
    assert load_config(str(cfg)).server.forward_max_message_bytes == 4 * 1024 * 1024  # the file wins
    monkeypatch.setenv("SIDECAR_MAX_MESSAGE_MIB", "16M")
    with pytest.raises(ConfigError) as err:
        load_config(None)
    assert err.value.field == "SIDECAR_MAX_MESSAGE_MIB"
    monkeypatch.delenv("SIDECAR_MAX_MESSAGE_MIB")
    assert load_config(None).server.forward_max_message_bytes == 16 * 1024 * 1024
