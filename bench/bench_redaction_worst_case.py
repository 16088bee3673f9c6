"""Redaction cost on worst-case inputs: one span attribute of 100 KB and of 1 MB made of a repeated short unit
that keeps the detectors busy (phone-like groups, digit runs, e-mail-ish fragments, key-block headers, base64,
nested JSON, dense IPs, encoded text, …), through the sidecar's real path (Pipeline.process_traces on the
serialized batch: raw Hyperscan scan, wire index, walk, confirming regexes, splice).

Linear cost means the CPU time per MB is the same at both sizes (ratio 1MB/100KB close to 10). The table also
shows the confirming regexes' attempts and the characters those attempts searched (PiiScanner.regex_calls /
regex_chars), the structural measure tests/processors/redaction/test_cost.py bounds.

Run: .venv/bin/python bench/bench_redaction_worst_case.py [--quick]
(writes bench/results/redaction_worst_case.md)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.config import SidecarConfig  # noqa: E402
from processors.handlers import Pipeline  # noqa: E402
from tests.processors.helpers import span, trace_request  # noqa: E402

# (name, repeated unit, or a function of the size)
WORST_CASES: list[tuple[str, str]] = [
    ("phone-like groups `12 34 56 78 `", "12 34 56 78 "),
    ("phone-like `1-2 `", "1-2 "),
    ("`(12) 345 `", "(12) 345 "),
    ("`+1 2 `", "+1 2 "),
    ("one digit run", "1234567890"),
    ("card-like groups `4111 1111 `", "4111 1111 "),
    ("dotted numbers `1.2.3.`", "1.2."),
    ("IPv6-ish `1:2:`", "1:2:"),
    ("e-mail-ish `a@a.a@`", "a@a.a@"),
    ("e-mail local parts `a.a.a`", "a.a+"),
    ("`-----BEGIN `", "-----BEGIN "),
    ("PEM headers without END", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n"),
    ("base64", "QUJDRGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo0NTY3ODkrLw"),
    ("`password=` repeated", "password="),
    ("`Bearer ` repeated", "Bearer "),
    ("`sk-` / `eyJ` fragments", "sk-eyJ."),
    ("IBAN-ish `DE89 3704 `", "DE89 3704 "),
    ("percent escapes `%40%2E`", "%40%2E"),
    ("JSON \\u escapes `\\u0040`", "\\u0040"),
    ("fullwidth digit groups", "\uff11\uff12 \uff13\uff14 "),
    ("Arabic-Indic digit groups", "\u0661\u0662 \u0663\u0664 "),
    ("zero-width inside text", "a\u200b1"),
    ("nested JSON `[` with an e-mail", "["),
    ("nested JSON objects", '{"a":'),
]


def make_text(unit: str, size: int) -> str:
    if unit in ("[", '{"a":'):  # a nested document holding one e-mail address in its innermost value
        depth = size // (len(unit) + 1)
        close = "]" if unit == "[" else "}"
        return unit * depth + '"jane@example.com"' + close * depth
    return (unit * (size // len(unit) + 1))[:size]


def measure(pipeline: Pipeline, text: str) -> tuple[float, int, int, bool]:
    """CPU seconds for one batch holding ``text`` as a span attribute, regex attempts, characters searched,
    whether the batch was changed."""
    raw = trace_request(span("s", {"note": text})).SerializeToString()
    scanner = pipeline.scanner
    scanner.regex_calls = scanner.regex_chars = 0
    t0 = time.process_time()
    result = pipeline.process_traces(raw)
    cpu = time.process_time() - t0
    return cpu, scanner.regex_calls, scanner.regex_chars, result.payload != raw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 KB and 100 KB instead of 100 KB and 1 MB")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "redaction_worst_case.md"))
    args = ap.parse_args()
    small, large = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    pipeline = Pipeline(SidecarConfig())
    measure(pipeline, "warm up jane@example.com 4111 1111 1111 1111")
    rows: list[str] = []
    worst = 0.0
    for name, unit in WORST_CASES:
        cpu_s, calls_s, _, _ = measure(pipeline, make_text(unit, small))
        cpu_l, calls_l, chars_l, changed = measure(pipeline, make_text(unit, large))
        per_mb_s, per_mb_l = cpu_s / small * 1e6, cpu_l / large * 1e6
        worst = max(worst, per_mb_l)
        ratio = cpu_l / cpu_s if cpu_s > 0 else float("nan")
        rows.append(
            f"| {name} | {cpu_s * 1e3:,.1f} | {per_mb_s:.2f} | {cpu_l * 1e3:,.1f} | {per_mb_l:.2f} "
            f"| {ratio:.1f}x "
            f"| {calls_s:,} → {calls_l:,} | {chars_l / large:.1f} | {'yes' if changed else 'no'} |"
        )
        print(rows[-1], flush=True)
    kb_s, kb_l = f"{small // 1000:,} KB", (f"{large // 1000:,} KB" if large < 1_000_000 else "1 MB")
    report = "\n".join(
        [
            "# Redaction cost on worst-case inputs",
            "",
            f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{'quick' if args.quick else 'full'} mode. "
            "One span attribute made of a repeated unit, through `Pipeline.process_traces` (raw scan, walk, "
            "confirming regexes, splice), CPU time of this process (`time.process_time`). "
            f"Size ratio {large // small}x: a time ratio near {large // small}x is linear.",
            "",
            f"| input | CPU ms @ {kb_s} | CPU s/MB @ {kb_s} | CPU ms @ {kb_l} | CPU s/MB @ {kb_l} "
            f"| time ratio | regex attempts | chars searched per input char @ {kb_l} | redacted |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"Worst CPU time per MB at {kb_l}: {worst:.2f} s. How linearity is guaranteed: see "
            "docs/sidecar.md, *Bounded cost*.",
            "",
        ]
    )
    Path(args.out).write_text(report)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
