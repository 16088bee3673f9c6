"""Generate the Grafana dashboards (JSON) from this folder's Python source (grafana-foundation-sdk).

    python compose/grafana/src/build.py            # write compose/grafana/dashboards/<folder>/<uid>.json
    python compose/grafana/src/build.py --check    # exit 1 if a committed file differs from the source

`make dashboards` runs the first; the test suite runs the check."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cost_tokens
import hosts_gpus
import operations
import overview
import pipeline_health
import privacy
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder

OUT = Path(__file__).resolve().parents[1] / "dashboards"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "dashboards.md"
BEGIN, END = "<!-- generated panels: begin (make dashboards) -->", "<!-- generated panels: end -->"

# provisioning folder -> dashboards in it (compose/grafana/provisioning/dashboards/dashboards.yaml)
FOLDERS: dict[str, list[Callable[[], dash.Dashboard]]] = {
    "llm": [overview.build, operations.build, cost_tokens.build],
    "privacy": [privacy.build],
    "platform": [pipeline_health.build, hosts_gpus.build],
}


def render(out: Path = OUT) -> dict[Path, str]:
    """Every dashboard file, by path, as the exact text written to disk."""
    files: dict[Path, str] = {}
    for folder, builders in FOLDERS.items():
        for build in builders:
            model = build().build()
            data = json.loads(json.dumps(model, cls=JSONEncoder))
            files[out / folder / f"{data['uid']}.json"] = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return files


def panel_tables(files: dict[Path, str]) -> str:
    """docs/dashboards.md's per-dashboard panel lists, from the same models as the JSON."""
    lines = [BEGIN]
    for path, text in files.items():
        d = json.loads(text)
        heading = f"### {d['title']} (`{d['uid']}`, folder `{path.parent.name}`)"
        lines += ["", heading, "", d["description"], ""]
        lines += ["| panel | what it answers |", "|---|---|"]
        for panel in d["panels"]:
            if panel["type"] == "row":
                lines.append(f"| **{panel['title']}** | |")
            else:
                lines.append(f"| {panel['title']} | {panel['description'].replace('|', '/')} |")
    return "\n".join([*lines, "", END])


def with_tables(doc: str, tables: str) -> str:
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOCS} lacks the markers {BEGIN} / {END}")
    head, rest = doc.split(BEGIN, 1)
    return head + tables + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--dir", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    files = render(args.dir)
    existing = set(args.dir.rglob("*.json"))
    docs = with_tables(DOCS.read_text(), panel_tables(files)) if args.dir == OUT else None
    if args.check:
        if docs is not None and DOCS.read_text() != docs:
            print(f"out of date: {DOCS} panel tables (run `make dashboards`)", file=sys.stderr)
            return 1
        stale = sorted(str(p) for p, text in files.items() if not p.exists() or p.read_text() != text)
        extra = sorted(str(p) for p in existing - set(files))
        for name in stale:
            print(f"out of date: {name} (run `make dashboards`)", file=sys.stderr)
        for name in extra:
            print(f"not made by the source: {name}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in existing - set(files):
        p.unlink()
    for p, text in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    if docs is not None:
        DOCS.write_text(docs)
    print(f"wrote {len(files)} dashboards under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
