"""The GenAI instrumentation flavours the pipeline prices and redacts, each installed from PyPI into a venv of
its own (they pin conflicting versions of the OTel SDK and semconv packages), cached under build/flavours/
by a hash of its requirements. `make flavours` creates them ahead of the tests."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "flavours"
APP = Path(__file__).with_name("flavour_app.py")

_OTEL_SDK = ["opentelemetry-sdk==1.45.2", "opentelemetry-exporter-otlp-proto-grpc==1.45.2"]
# openai < 3: the openai-v2 instrumentation 2.4b0 patches the 2.x client
REQUIREMENTS: dict[str, list[str]] = {
    "otel": [
        "openai==2.54.0",
        "opentelemetry-instrumentation-openai-v2==2.4b0",
        "opentelemetry-util-genai==1.1b0",
        *_OTEL_SDK,
    ],
    "openllmetry": ["openai==2.54.0", "opentelemetry-instrumentation-openai==0.62.4", *_OTEL_SDK],
    "openinference": ["openai==2.54.0", "openinference-instrumentation-openai==0.1.66", *_OTEL_SDK],
    # openlit's requirement ranges send pip's resolver backtracking for minutes: pin the set they resolve to
    "openlit": [
        "openai==2.54.0",
        "openlit==1.45.0",
        "opentelemetry-api==1.39.1",
        "opentelemetry-sdk==1.39.1",
        "opentelemetry-exporter-otlp==1.39.1",
        "opentelemetry-semantic-conventions==0.60b1",
        "opentelemetry-util-http==0.60b1",
        *(
            f"opentelemetry-instrumentation{suffix}==0.60b1"
            for suffix in (
                "",
                "-aiohttp-client",
                "-asgi",
                "-django",
                "-falcon",
                "-fastapi",
                "-flask",
                "-httpx",
                "-pyramid",
                "-requests",
                "-starlette",
                "-tornado",
                "-urllib",
                "-urllib3",
                "-wsgi",
            )
        ),
    ],
    "litellm": ["openai==2.54.0", "litellm==1.110.2", *_OTEL_SDK],
}


def flavour_python(name: str) -> Path:
    """The python of the flavour's venv, created (with progress on stderr) if it is not cached yet."""
    reqs = REQUIREMENTS[name]
    digest = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:12]
    home = CACHE / f"{name}-{digest}"
    python = home / "bin" / "python"
    if (home / ".installed").exists():
        return python
    print(
        f"==> installing the {name} instrumentation flavour into {home} ({' '.join(reqs)})", file=sys.stderr
    )
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install for flavour {name!r} failed:\n{result.stdout}\n{result.stderr}")
    (home / ".installed").write_text("\n".join(reqs) + "\n")
    return python


if __name__ == "__main__":
    for flavour in sys.argv[1:] or REQUIREMENTS:
        print(flavour_python(flavour))
