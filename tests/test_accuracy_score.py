"""bench/sidecar/accuracy.py `score`: the one scoring function of the in-process and through-the-Collector
accuracy benches (a lost record may only lower the figures)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # as the benches import it

from sidecar.accuracy import evaluate, score
from sidecar.pii_corpus import Sample

CORPUS = [
    Sample("email", "mail a@b.example now", "a@b.example"),
    Sample("email", "mail c@d.example now", "c@d.example"),
    Sample("us_ssn", "ssn 123-45-6789", "123-45-6789"),
    Sample(None, "order 42 shipped", ""),
    Sample(None, "version 1.2.3", ""),
]


def test_found_missed_altered_and_lost() -> None:
    outputs = ["mail <email> now", "mail c@d.example now", None, "order 42 shipped", "version <x>"]
    acc = score("t", CORPUS, outputs)
    assert acc.total == {"email": 2, "us_ssn": 1}
    assert acc.found == {"email": 1}
    assert acc.recall("email") == 0.5
    assert acc.recall("us_ssn") == 0.0  # lost counts as a miss, never as found
    assert (acc.benign_altered, acc.benign_total, acc.lost) == (1, 2, 1)
    assert acc.missed_examples["lost"] == ["ssn 123-45-6789"]


def test_lost_benign_counts_as_altered() -> None:
    acc = score("t", CORPUS, [None] * len(CORPUS))
    assert acc.overall() == 0.0
    assert acc.altered_rate() == 1.0
    assert acc.lost == len(CORPUS)


def test_evaluate_is_score_of_the_redactor_outputs() -> None:
    def redact(text: str) -> str:
        return text.replace("a@b.example", "<email>")

    via_evaluate = evaluate("e", redact, CORPUS, kinds=["email"])
    via_score = score("s", CORPUS, [redact(s.text) for s in CORPUS], kinds=["email"])
    assert (
        (via_evaluate.found, via_evaluate.total)
        == (via_score.found, via_score.total)
        == ({"email": 1}, {"email": 2})
    )
    assert via_evaluate.benign_total == via_score.benign_total == 2
