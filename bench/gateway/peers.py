"""The gateways users pick instead, each in its own virtualenv from PyPI with pinned versions.

``python bench/gateway/peers.py`` creates (or reuses) the venvs under ``build/bench-peers/`` and prints the
versions installed; the peer benchmark calls ``ensure`` itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "build" / "bench-peers"

OTEL = [
    "opentelemetry-api==1.45.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp-proto-grpc==1.45.2",
]
PEERS: dict[str, list[str]] = {
    # LiteLLM proxy (its own server, router and logging), with and without its "otel" callback.
    # litellm 1.110.2's `proxy` extra names a `litellm-proxy` distribution the registry does not have (the
    # proxy server itself ships in the litellm wheel), so the extra's other requirements are listed here
    # (litellm-enterprise 0.1.83.post1 is not there either: 0.1.83).
    "litellm": [
        "litellm==1.110.2",
        *[
            "gunicorn>=23.0.0,<24.0",
            "uvicorn>=0.33.0,<1.0",
            "granian>=2.7.4,<3.0",
            "uvloop>=0.22.1,<1.0",
            "fastapi>=0.136.3,<1.0",
            "starlette>=1.0.1,<2.0",
            "backoff>=2.2.1,<3.0",
            "pyyaml>=6.0.3,<7.0",
            "rq>=2.7.0,<3.0",
            "orjson>=3.11.6,<4.0",
            "hiredis>=3.0.0,<4.0",
            "apscheduler>=3.11.2,<4.0",
            "fastapi-sso>=0.19.0,<1.0",
            "pyjwt>=2.13.0,<3.0",
            "python-multipart>=0.0.27,<1.0",
            "cryptography>=49.0.0,<51.0",
            "pynacl>=1.6.2,<2.0",
            "websockets>=15.0.1,<16.0",
            "boto3>=1.43.117,<2.0",
            "azure-identity>=1.25.2,<2.0",
            "azure-storage-blob>=12.28.0,<13.0",
            "mcp>=2.3.0,<3",
            "httpx2>=2.10.0,<3",
            "pydantic>=2.12.0,<3",
            "litellm-enterprise==0.1.83",
            "restrictedpython>=8.5,<9.0",
            "rich>=13.9.4,<14.0",
            "inquirerpy>=0.3.4,<1.0",
            "tomlkit>=0.13.3,<1.0",
            "polars>=1.38.1,<2.0",
            "soundfile>=0.12.1,<1.0",
            "pyroscope-io>=0.8.16,<1.0",
            "expression>=5.6.0,<6.0",
            "backports-zstd>=1.0.0,<2.0",
            "semver>=3.0.4,<4",
        ],
        *OTEL,
        "opentelemetry-exporter-otlp-proto-http==1.45.2",
    ],
    # The do-it-yourself proxy: FastAPI + the official openai client + the official OTel instrumentations.
    "fastapi-openai": [
        "fastapi==0.165.0",
        "uvicorn==0.54.0",
        "openai==3.57.0",
        "httpx==0.28.1",  # openai 3 uses httpx2; opentelemetry-instrumentation-openai-v2 imports httpx
        "opentelemetry-instrumentation-openai-v2==2.4b0",
        "opentelemetry-util-genai==1.1b0",  # 1.2b0 renamed the `instruments` module openai-v2 2.4b0 imports
        "opentelemetry-instrumentation-fastapi==0.66b2",
        *OTEL,
    ],
}
# What each venv's table row names (distribution -> version, read back after install).
SHOWN = {
    "litellm": ["litellm", "opentelemetry-sdk"],
    "fastapi-openai": [
        "fastapi",
        "uvicorn",
        "openai",
        "opentelemetry-instrumentation-openai-v2",
        "opentelemetry-instrumentation-fastapi",
        "opentelemetry-sdk",
    ],
}


def python(name: str) -> Path:
    return ROOT / name / "bin" / "python"


def ensure(name: str) -> dict[str, str]:
    """The venv for ``name`` with its pinned packages; returns the installed versions it names."""
    target = ROOT / name
    stamp = target / ".pins.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == PEERS[name]):
        print(f"==> installing peer {name}: {' '.join(PEERS[name])}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        subprocess.run(
            [str(python(name)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEERS[name]],
            check=True,
        )
        stamp.write_text(json.dumps(PEERS[name]))
    out = subprocess.run(
        [
            str(python(name)),
            "-c",
            "import importlib.metadata as m, json, sys; "
            "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))",
            *SHOWN[name],
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEERS):
        print(peer, ensure(peer))
