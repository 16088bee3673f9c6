"""Render the Helm chart with the pinned helm, and validate what it renders: Kubernetes API schemas
(kubernetes-validate), the Prometheus operator's CRD schemas (from its Go module), the Collector's own
`validate`."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "llm-otel-pipeline"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
# The Kubernetes release rendered and validated against (kubernetes-validate ships its schemas).
KUBE_VERSION = os.environ.get("CHART_KUBE_VERSION", "1.34.0")
HELM_VERSION = "v3.22.0"
PROM_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROM_OPERATOR_VERSION = "v0.85.0"

Doc = dict[str, Any]


def _gopath() -> Path:
    out = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(out.split(os.pathsep)[0])


@functools.cache
def helm_bin() -> Path:
    explicit = os.environ.get("HELM_BIN")
    path = Path(explicit) if explicit else _gopath() / "bin" / f"helm-{HELM_VERSION}"
    if not os.access(path, os.X_OK):
        raise AssertionError(f"helm {HELM_VERSION} not found at {path}: run `make helm`")
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm_bin()), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def render(
    values: list[Path] | None = None,
    sets: dict[str, str] | None = None,
    chart: Path = CHART,
    release: str = "llm",
    namespace: str = "llm",
) -> list[Doc]:
    args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for v in values or []:
        args += ["-f", str(v)]
    for k, val in (sets or {}).items():
        args += ["--set", f"{k}={val}"]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[Doc], kind: str, name_suffix: str) -> Doc:
    hits = [d for d in find(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    names = [d["metadata"]["name"] for d in hits]
    assert len(hits) == 1, f"expected one {kind} named *{name_suffix}, got {names}"
    return hits[0]


def container(workload: Doc, name: str) -> Doc:
    for c in workload["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"{workload['metadata']['name']} has no container {name}")


# --- Prometheus operator CRDs --------------------------------------------------------------------


@functools.cache
def prom_operator_crd_dir() -> Path:
    """The CRDs the Prometheus operator's Go module ships (example/prometheus-operator-crd/), from the module
    cache (`make helm` downloads the module)."""
    explicit = os.environ.get("PROM_OPERATOR_CRDS")
    if explicit:
        return Path(explicit)
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{PROM_OPERATOR_MODULE}@{PROM_OPERATOR_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        cwd="/",
    )
    if out.returncode != 0:
        raise AssertionError(f"cannot get {PROM_OPERATOR_MODULE}@{PROM_OPERATOR_VERSION}: {out.stderr}")
    return Path(json.loads(out.stdout)["Dir"]) / "example" / "prometheus-operator-crd"


class _CrdLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's `=` value tag: the CRDs list "=" as an enum member (relabel actions)."""


_CrdLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:value"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema where objects with declared properties refuse unknown fields, as the API
    server's strict field validation does (it would otherwise prune them silently)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> strict JSON schema, for every CRD in the operator's module."""
    out: dict[tuple[str, str], Any] = {}
    for path in sorted(prom_operator_crd_dir().glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_CrdLoader)  # a SafeLoader subclass
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # metadata is validated by the API server itself, not by the CRD's schema
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            out[(f"{group}/{version['name']}", kind)] = _strict(schema)
    if not out:
        raise AssertionError(f"no CRDs found in {prom_operator_crd_dir()}")
    return out


def validate_object(doc: Doc) -> None:
    """Raise if `doc` does not match its schema: the Kubernetes API (strict) or a Prometheus operator CRD."""
    import jsonschema
    import kubernetes_validate

    key = (doc["apiVersion"], doc["kind"])
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        schema = crd_schemas().get(key)
        if schema is None:
            raise AssertionError(f"no CRD schema for {key}")
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            raise AssertionError("; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
        return
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


# --- the Collector configuration in a rendered workload ----------------------------------------


def collector_invocation(docs: list[Doc], workload: Doc, conf_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The Collector container's command line and environment as Kubernetes would run them, with its
    ConfigMap written to conf_dir (mounted at /conf) and secret values replaced by placeholders."""
    c = container(workload, "collector")
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    conf_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/conf")
    cm_name = volumes[conf_mount["name"]]["configMap"]["name"]
    cm = find(docs, "ConfigMap", cm_name)[0]
    conf_dir.mkdir(parents=True, exist_ok=True)
    for key, text in cm["data"].items():
        (conf_dir / key).write_text(text)
    env: dict[str, str] = {}
    for e in c.get("env", []):
        if "value" in e:
            val = str(e["value"])
            for k, v in env.items():
                val = val.replace(f"$({k})", v)
            env[e["name"]] = val
        elif "secretKeyRef" in e.get("valueFrom", {}):
            env[e["name"]] = "placeholder-secret"
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = "placeholder-pod"
    args = [a.replace("/conf/", f"{conf_dir}/") for a in c.get("args", [])]
    return [*c["command"], *args], env


def copy_chart(dest: Path) -> Path:
    shutil.copytree(CHART, dest, symlinks=False)
    return dest
