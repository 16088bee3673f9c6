"""`make demo`'s report, end to end: demo.py on a native stack of its own writes report.json, report.md and a
self-contained report.html; headless Chromium renders the page (the charts are drawn, the screenshot is not
blank) and every number the page shows is the value report.json holds. The privacy check is real: it finds a
planted value, and over the demo's traffic it finds none of the values the load generator injected."""

from __future__ import annotations

import html.parser
import json
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.stack_support import REPO, stack_env

sys.path.insert(0, str(REPO / "compose" / "native"))
import report
import report_svg

DEMO = REPO / "compose" / "native" / "demo.py"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1360,2400",
]


# --- unit: the privacy check and the dashboard query substitution --------------------------------


def test_pii_check_finds_a_planted_value_in_any_form(tmp_path: Path) -> None:
    injected = tmp_path / "pii.jsonl"
    injected.write_text(
        "\n".join(
            json.dumps(v)
            for v in [
                {"kind": "email", "value": "jane.doe7@example.org"},
                {"kind": "credit_card", "value": "4111 1111 1111 1111"},
                {"kind": "phone", "value": "+44 20 7946 0123"},
            ]
        )
    )
    clean = {"traces.jsonl": '{"body": "[REDACTED:email]"}', "logs.jsonl": "nothing here"}
    assert report.pii_check(injected, clean)["found_in_exports"] == 0
    leaked = {**clean, "logs.jsonl": "card 4111111111111111 and mail jane.doe7@example.org"}
    check = report.pii_check(injected, leaked)
    assert check["found_in_exports"] == 2
    assert {f["kind"] for f in check["found"]} == {"credit_card", "email"}
    assert "4111" not in json.dumps(check)  # the report never repeats a value it found
    assert not report.pii_check(tmp_path / "absent.jsonl", clean)["applicable"]


def test_every_report_query_is_a_dashboard_target_with_variables_at_all() -> None:
    dashboards = report.Dashboards()
    for _, uid, title, *_ in [*report.TIME_SERIES, *report.TOTALS]:
        queries = dashboards.queries(uid, title, 90)
        assert queries, f"{uid} / {title} has no Prometheus target"
        for q in queries:
            assert "$" not in q.expr, q.expr


def test_a_missing_recording_rule_is_inlined_only_where_its_meaning_is_kept() -> None:
    defs = {"privacy:pii_redactions:rate5m": "sum by (pii_type) (rate(sidecar_redactions_total[5m]))"}
    missing = set(defs)
    assert report.inline_rules("sum(privacy:pii_redactions:rate5m)", missing, defs) == (
        "sum((sum by (pii_type) (rate(sidecar_redactions_total[5m]))))"
    )
    assert "sidecar_redactions_total" in report.inline_rules(
        'privacy:pii_redactions:rate5m{pii_type=~".*"}', missing, defs
    )
    narrowed = 'privacy:pii_redactions:rate5m{pii_type="email"}'
    assert report.inline_rules(narrowed, missing, defs) == narrowed


# --- end to end: make demo's script on a stack of its own --------------------------------------------


@pytest.fixture(scope="module")
def demo_run(collector_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("demo")
    env = stack_env(run_dir, DEMO_DURATION="15", DEMO_RATE="6", DEMO_PII_RATE="0.3")
    env.pop("DEMO_KEEP", None)
    result = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, f"demo failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return run_dir, result.stdout


@pytest.mark.e2e
def test_demo_writes_the_three_files_and_names_them(demo_run: tuple[Path, str]) -> None:
    run_dir, stdout = demo_run
    for name in ("report.html", "report.md", "report.json"):
        assert (run_dir / name).stat().st_size > 0
        assert str(run_dir / name) in stdout
    assert "PII values the load generator injected, found in any export: 0" in stdout
    assert "PII values the load generator injected, found in any export: **0**" in (
        (run_dir / "report.md").read_text()
    )


@pytest.mark.e2e
def test_report_json_holds_every_chart_the_example_and_a_real_privacy_check(
    demo_run: tuple[Path, str],
) -> None:
    data = json.loads((demo_run[0] / "report.json").read_text())
    for key, *_ in report.TIME_SERIES:
        series = data["prometheus"]["series"][key]["series"]
        assert any(s["points"] for s in series), f"chart {key} has no data"
    check = data["pii_check"]
    assert check["applicable"] and check["injected_values"] > 0
    assert check["found_in_exports"] == 0, check["found"]
    assert "traces.jsonl" in check["searched"] and "logs.jsonl" in check["searched"]
    assert data["exports"]["redacted_values"] > 0
    ex = data["example"]
    assert ex is not None and ex["spans"], "no example request"
    assert ex["exemplar"]["span_id"] in {s["span_id"] for s in ex["spans"]}
    assert data["exports"]["cost_usd"] == pytest.approx(data["prometheus"]["cost_counter_usd"], rel=1e-9)


class _Dom(html.parser.HTMLParser):
    """The rendered DOM's charts (attributes) and its numbers (data-key -> text)."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict[str, str]] = []
        self.points: Counter[int] = Counter()  # chart index -> elements carrying data-value
        self.numbers: dict[str, list[str]] = {}
        self.body: dict[str, str] = {}
        self._key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        if tag == "svg" and "chart" in a.get("class", "").split():
            self.charts.append(a)
        elif self.charts and "data-value" in a:
            self.points[len(self.charts) - 1] += 1
        if "data-key" in a:
            self._key = a["data-key"]

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self.numbers.setdefault(self._key, []).append(data.strip())
            self._key = None


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: run `make tools` (Debian package chromium)")
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG, as Chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


@pytest.mark.e2e
def test_chromium_renders_the_charts_and_the_numbers_equal_report_json(
    demo_run: tuple[Path, str], tmp_path: Path
) -> None:
    run_dir = demo_run[0]
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    page = (run_dir / "report.html").as_uri()
    page_text = (run_dir / "report.html").read_text()
    assert (
        "http://" not in page_text.replace("http://www.w3.org/2000/svg", "") and "https://" not in page_text
    )

    dom = _Dom()
    dom.feed(_chromium("--dump-dom", page, profile=tmp_path / "dom").stdout)
    assert dom.body.get("data-rendered") == "1", "the page's load handler did not run"
    drawn = [c for c in dom.charts if "empty" not in c["class"].split()]
    assert len(drawn) >= len(report.TIME_SERIES) + 4, [c.get("data-title") for c in dom.charts]
    for i, chart in enumerate(dom.charts):
        if "empty" in chart["class"].split():
            continue
        assert int(chart["data-drawn"]) == dom.points[i] > 0, f"chart {chart['data-title']} not drawn"
    by_title = {c["data-title"]: i for i, c in enumerate(dom.charts)}
    for key, _, title, _ in report.TIME_SERIES:
        points = sum(len(s["points"]) for s in data["prometheus"]["series"][key]["series"])
        assert dom.points[by_title[title]] == points > 0, f"chart {title}: points differ from report.json"

    assert dom.numbers, "no numbers in the page"
    decimals = {f.key: f.decimals for f in report.figures(data)}
    assert set(dom.numbers) == set(decimals)
    for key, texts in dom.numbers.items():
        value = report.lookup(data, key)
        for text in texts:
            assert text == report.fmt(value, decimals[key]), (
                f"{key}: page shows {text}, report.json has {value}"
            )
    assert dom.numbers["pii_check/found_in_exports"] == ["0", "0"]

    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", page, profile=tmp_path / "shot")
    width, bpp, rows = _png_pixels(shot)
    colours: Counter[bytes] = Counter(
        row[i : i + 3] for row in rows[::4] for i in range(0, width * bpp, bpp * 4)
    )
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    palette = [bytes.fromhex(c[1:]) for c in report_svg.PALETTE[:3]]
    assert all(colours[c] > 20 for c in palette), "the chart colours are not on the screenshot"
