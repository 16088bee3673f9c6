"""PII accuracy on the labelled corpus: recall per type and benign-altered rate, for the sidecar's scanner
and for Presidio's pattern recognizers (presidio-analyzer with its no-op NLP engine)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from processors.redaction.config import RedactionConfig
from processors.redaction.scanner import PiiScanner
from sidecar.pii_corpus import KINDS, Sample

Redactor = Callable[[str], str]

# Presidio has no recognizer for these kinds (it would need custom patterns)
PRESIDIO_ENTITIES = {
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "credit_card": "CREDIT_CARD",
    "us_ssn": "US_SSN",
    "iban": "IBAN_CODE",
    "ipv4": "IP_ADDRESS",
    "ipv6": "IP_ADDRESS",
}


@dataclass
class Accuracy:
    name: str
    found: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    benign_altered: int = 0
    benign_total: int = 0
    seconds: float = 0.0
    lost: int = 0  # records that never came back (through-the-Collector mode)
    missed_examples: dict[str, list[str]] = field(default_factory=dict)

    def recall(self, kind: str) -> float | None:
        return self.found.get(kind, 0) / self.total[kind] if self.total.get(kind) else None

    def overall(self, kinds: list[str] | None = None) -> float:
        keys = list(self.total) if kinds is None else [k for k in kinds if k in self.total]
        return sum(self.found.get(k, 0) for k in keys) / max(1, sum(self.total[k] for k in keys))

    def altered_rate(self) -> float:
        return self.benign_altered / max(1, self.benign_total)


def sidecar_redactor() -> Redactor:
    scanner = PiiScanner(RedactionConfig())

    def redact(text: str) -> str:
        hits = scanner.candidates([text])
        if 0 not in hits:
            return text
        result = scanner.redact_text(text, hits[0])
        return text if result is None else result[0]

    return redact


def presidio_redactor() -> Redactor | None:
    try:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )
    except ImportError:
        return None
    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    # Presidio's email check would download the public suffix list; use the snapshot bundled with tldextract
    offline = tldextract.TLDExtract(suffix_list_urls=())
    email_recognizer.tldextract.extract = offline  # type: ignore[attr-defined]
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
    ):
        registry.add_recognizer(recognizer)
    engine = AnalyzerEngine(
        registry=registry,
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]),
        supported_languages=["en"],
    )

    def redact(text: str) -> str:
        results = engine.analyze(text=text, language="en")
        out = text
        for r in sorted(results, key=lambda r: r.start, reverse=True):
            out = out[: r.start] + f"<{r.entity_type}>" + out[r.end :]
        return out

    return redact


def _scored(sample: Sample, kinds: list[str] | None) -> bool:
    return sample.kind is None or kinds is None or sample.kind in kinds


def score(
    name: str,
    corpus: list[Sample],
    outputs: Sequence[str | None],
    kinds: list[str] | None = None,
    seconds: float = 0.0,
) -> Accuracy:
    """Recall per type and the benign-altered rate of `outputs[i]`, what became of `corpus[i].text` (in
    process or read back from a backend). None = the text never came back: counted as lost, and as a miss
    or an alteration, so a lost record can only lower the figures."""
    acc = Accuracy(name, seconds=seconds)
    for sample, out in zip(corpus, outputs, strict=True):
        if not _scored(sample, kinds):
            continue
        if out is None:
            acc.lost += 1
            acc.missed_examples.setdefault("lost", []).append(sample.text)
        if sample.kind is None:
            acc.benign_total += 1
            if out != sample.text:
                acc.benign_altered += 1
                acc.missed_examples.setdefault("benign", []).append(f"{sample.text!r} -> {out!r}")
        else:
            acc.total[sample.kind] = acc.total.get(sample.kind, 0) + 1
            if out is not None and sample.value not in out:
                acc.found[sample.kind] = acc.found.get(sample.kind, 0) + 1
            else:
                acc.missed_examples.setdefault(sample.kind, []).append(sample.text)
    return acc


def evaluate(name: str, redact: Redactor, corpus: list[Sample], kinds: list[str] | None = None) -> Accuracy:
    t0 = time.perf_counter()
    outputs = [redact(sample.text) if _scored(sample, kinds) else None for sample in corpus]
    return score(name, corpus, outputs, kinds, seconds=time.perf_counter() - t0)


__all__ = [
    "KINDS",
    "PRESIDIO_ENTITIES",
    "Accuracy",
    "evaluate",
    "presidio_redactor",
    "score",
    "sidecar_redactor",
]
