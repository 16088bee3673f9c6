"""requirements/*.txt (the lock files `make venv` installs from) match pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
# app/telemetry/otlp_encode.py imports private modules of these: they need an upper bound
PRIVATE_API_USERS = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-proto-grpc",
)


def _pins(lock: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in lock.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _project() -> dict:  # type: ignore[type-arg]
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text())["project"])


@pytest.mark.parametrize(("lock", "extras"), [("dev.txt", ["dev"]), ("bench.txt", ["dev", "bench"])])
def test_every_requirement_is_pinned_within_its_bounds_with_hashes(lock: str, extras: list[str]) -> None:
    path = REPO / "requirements" / lock
    pins = _pins(path)
    project = _project()
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {lock}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{lock}: {name}=={pins[name]} violates {req}"
        )
    # every pin carries hashes (pip --require-hashes refuses the file otherwise)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    unhashed = [b.split()[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
    assert not unhashed


def test_the_bench_lock_keeps_every_tested_version() -> None:
    dev, bench = _pins(REPO / "requirements" / "dev.txt"), _pins(REPO / "requirements" / "bench.txt")
    changed = {name: (v, bench[name]) for name, v in dev.items() if name in bench and bench[name] != v}
    assert not changed


def test_packages_whose_private_api_we_use_have_an_upper_bound() -> None:
    deps: dict[str, Requirement] = {
        canonicalize_name(Requirement(r).name): Requirement(r) for r in _project()["dependencies"]
    }
    for name in PRIVATE_API_USERS:
        assert any(s.operator in ("<", "<=", "~=", "==") for s in deps[name].specifier), name


def test_make_venv_installs_from_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "pip install -q --require-hashes -r $(LOCK)" in makefile
    assert "pip install -q --no-deps -e ." in makefile
    assert re.search(r"^lock:", makefile, re.M)
