"""Finds and replaces PII in text: one Hyperscan pass flags candidate strings, Python regexes and validators
confirm them. Holds no OTLP knowledge (see walk.py for the walk over batches)."""

from __future__ import annotations

import bisect
import hashlib
import heapq
import hmac
import json
import re
import re._parser as re_parser
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import hyperscan
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config_loader import ConfigError
from processors.redaction import normalise as pii_normalise
from processors.redaction import validators as pii_validators
from processors.redaction.config import RedactionConfig
from processors.redaction.keys import SecretKeyRules, key_end_checker
from processors.redaction.patterns import (
    BUILTIN_TYPES,
    RAW_DIGIT_RUN,
    RAW_SECOND_PASS,
    RAW_TRIGGER_OVERRIDES,
    SECRET_TYPES,
    TRIGGERS,
    PiiType,
)

SECRET_LABEL = "SECRET"
HIGH_CONFIDENCE_TYPES = frozenset({"email", "credit_card", "us_ssn", "iban"})
NUMBER_TYPES = frozenset({"credit_card", "phone"})  # what an integer attribute can be

KEY_PLAIN, KEY_SECRET, KEY_ALLOWED = 0, 1, 2


@dataclass(frozen=True)
class _Detector:
    name: str
    label: str
    pattern: re.Pattern[str]
    validator: Callable[[str], bool]
    partial: bool  # replace only the group named "v"
    shrink_at: str
    shrink_prefix: str
    reach: int  # a match starts at most this many characters before a trigger hit ends (0: unknown)
    width: int  # the longest match of the regex (0: unbounded)
    needs_context: Callable[[str], bool] | None
    context_ok: Callable[[str, int, int], bool] | None


class PiiScanner:
    def __init__(self, config: RedactionConfig) -> None:
        enabled = set(config.enabled_builtin_types())
        types: list[PiiType] = [t for t in BUILTIN_TYPES if t.name in enabled]
        types += [
            PiiType(p.name, p.regex, pii_validators.always_ok, p.caseless) for p in config.custom_patterns
        ]
        for i, p in enumerate(config.custom_patterns):
            try:
                _compile([(p.regex, p.caseless)])
            except hyperscan.error as exc:
                raise ConfigError(
                    f"redaction.custom_patterns[{i}].regex", f"Hyperscan cannot compile {p.regex!r}: {exc}"
                ) from exc
        self.detectors: list[_Detector] = []
        for t in types:
            pattern = t.compile()
            width = _max_width(pattern)
            reach = t.reach if t.name in TRIGGERS else 0  # custom patterns: always the whole text
            if reach and width:
                reach = min(reach, width)  # a match holds its trigger hit, so it starts at most width before
            self.detectors.append(
                _Detector(
                    t.name,
                    t.label,
                    pattern,
                    t.validator,
                    "v" in pattern.groupindex,
                    t.shrink_at,
                    t.shrink_prefix,
                    reach,
                    width,
                    t.needs_context,
                    t.context_ok,
                )
            )
        names = [d.name for d in self.detectors]
        custom = {p.name for p in config.custom_patterns}
        self.high_confidence_ids = frozenset(
            i for i, n in enumerate(names) if n in HIGH_CONFIDENCE_TYPES or n in SECRET_TYPES or n in custom
        )
        # ^ the detectors that also apply under allow-listed keys: a match is PII whatever key holds it
        self._number_ids = [i for i, n in enumerate(names) if n in NUMBER_TYPES]
        self._hmac_key = config.hmac_key() if config.mode == "hmac" else None
        self._placeholder = config.placeholder_format
        self._hmac_format = config.hmac_format
        self._hmac_length = config.hmac_length
        self._secret_keys = SecretKeyRules(config.secret_keys + config.extra_secret_keys)
        self._allowed = frozenset(config.allowed_keys + config.extra_allowed_keys)
        self._key_cache: dict[str, int] = {}
        # Hyperscan looks for the cheap trigger of each built-in type (custom patterns: their own regex in
        # prefilter mode); Python confirms with the full regex and the validator.
        triggers = [TRIGGERS.get(t.name, (t.regex, t.caseless)) for t in types]
        self._value_db = _compile(triggers) if triggers else None
        raw_patterns = [
            RAW_TRIGGER_OVERRIDES.get(t.name, trigger) for t, trigger in zip(types, triggers, strict=True)
        ]
        self._raw_digit_id = -1
        if any(t.name in RAW_TRIGGER_OVERRIDES for t in types):
            raw_patterns.append(RAW_DIGIT_RUN)
            self._raw_digit_id = len(raw_patterns) - 1
        # The raw-batch scan also looks for secret key names (a batch whose only finding is a key rule must
        # not be waved through) and for integer / double values large enough to be a card or phone number.
        # Both are written so that they match whatever order an encoder writes the fields in (the Collector
        # writes a KeyValue's value before its key); see keys.py and _NUMBER_VALUE_TRIGGERS.
        self._key_ids = range(len(raw_patterns), len(raw_patterns) + len(self._secret_keys.rules))
        raw_patterns += [(p, True) for p in self._secret_keys.raw_patterns()]
        raw_patterns += _NUMBER_VALUE_TRIGGERS
        self._double_id = len(raw_patterns) - 1
        self._raw_db = _compile(raw_patterns) if raw_patterns else None
        # second pass: encoded or look-alike characters that the normalised copy decodes (normalise.py), and
        # the rest of the triggers split off above
        self._raw_db2 = _compile(
            [(pii_normalise.RAW_ENCODED_TRIGGER, True)]
            + [RAW_SECOND_PASS[t.name] for t in types if t.name in RAW_SECOND_PASS]
        )
        self._local = threading.local()
        self.regex_calls = 0
        """Regex attempts by the confirming matchers so far (a measure of cost for tests and benches)."""
        self.regex_chars = 0
        """Characters those attempts searched through (their window lengths)."""

    # --- keys --------------------------------------------------------------------------------------
    def key_kind(self, key: str) -> int:
        kind = self._key_cache.get(key)
        if kind is None:
            if key in self._allowed:
                kind = KEY_ALLOWED
            else:
                kind = KEY_SECRET if self._secret_keys.is_secret(key) else KEY_PLAIN
            if len(self._key_cache) > 50_000:  # keys come from telemetry: keep the cache bounded
                self._key_cache.clear()
            self._key_cache[key] = kind
        return kind

    def number_type(
        self, key: str, number: int, only: frozenset[int] | None = None
    ) -> tuple[str, str] | None:
        """(type name, label) when the integer ``number`` held under ``key`` is a card or phone number (the
        key is its context: ``user.phone`` makes a bare digit run a phone number, as a word would in text)."""
        digits = str(number)
        text = f"{key}: {digits}"
        ids = [i for i in self._number_ids if only is None or i in only]
        for start, end, det_id in self._find(text, ids):
            if start == len(text) - len(digits) and end == len(text):
                det = self.detectors[det_id]
                return det.name, det.label
        return None

    # --- scanning ----------------------------------------------------------------------------------
    def _scratch(self, name: str, db: hyperscan.Database) -> hyperscan.Scratch:
        scratch = getattr(self._local, name, None)
        if scratch is None:
            scratch = hyperscan.Scratch(db)
            setattr(self._local, name, scratch)
        return scratch

    def scan_raw(self, raw: bytes, string_tags: frozenset[int]) -> list[int]:
        """End offsets of every trigger or secret-key-name hit in ``raw`` (a serialized batch). Empty means
        the batch needs no redaction at all. ``string_tags``: the last byte of the tag of every string or
        bytes field of this kind of message (wire_index.string_tag_bytes)."""
        if self._raw_db is None:
            return []
        ends: list[int] = []
        append = ends.append

        digit_id = self._raw_digit_id
        run = [-1, True]  # end of the previous digit-run hit, and whether its run was kept
        key_ids = self._key_ids
        double_id = self._double_id
        size = len(raw)

        def on_match(pattern: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            if pattern in key_ids and end < size and raw[end] in _NOT_AFTER_KEY:
                return  # the key goes on with another letter or digit: a longer word, not the rule
            if pattern == double_id and (end + 7 >= size or raw[end + 7] not in _LARGE_DOUBLE_TOP_BYTES):
                return  # a double too small to be a card or phone number
            if pattern == digit_id:
                # the same run as the previous hit (hits come in end order), or a new one
                if end - 8 < run[0]:
                    keep = run[1]
                else:
                    keep = _digit_run_may_start_a_number(raw, end - 8, string_tags)
                run[0], run[1] = end, keep
                if not keep:
                    return
            append(end)

        self._raw_db.scan(raw, on_match, scratch=self._scratch("raw", self._raw_db))
        first = len(ends)
        self._raw_db2.scan(
            raw, lambda _p, _s, end, _f, _c: append(end), scratch=self._scratch("raw2", self._raw_db2)
        )
        if first and len(ends) > first:
            ends.sort()
        return ends

    def candidates(self, texts: list[str]) -> dict[int, set[int]]:
        """Index of each text that may hold PII → detector ids that fired on it (one pass over all texts)."""
        return {idx: set(by_det) for idx, by_det in self.candidate_hits(texts).items()}

    def candidate_hits(self, texts: list[str]) -> dict[int, dict[int, list[int] | None]]:
        """Index of each text that may hold PII → detector id → sorted end offsets (characters) of its trigger
        hits in that text, or None when they are not known as character offsets (non-ASCII text)."""
        if self._value_db is None or not texts:
            return {}
        # the normalised copies of texts that have one are scanned too; their hits count for the original
        # text without offsets (redact_text scans the copy again)
        copies: list[int] = []
        scanned = list(texts)
        for idx, t in enumerate(texts):
            if pii_normalise.may_change(t):
                norm = pii_normalise.normalise(t)
                if norm is not None:
                    copies.append(idx)
                    scanned.append(norm.text)
        encoded = [t.encode("utf-8", "surrogatepass") for t in scanned]
        starts: list[int] = []
        ends: list[int] = []
        pos = 0
        for b in encoded:
            starts.append(pos)
            pos += len(b)
            ends.append(pos)
            pos += 1  # separator
        hits: list[tuple[int, int]] = []
        append = hits.append

        def on_match(det: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            append((det, end))

        self._value_db.scan(b"\x00".join(encoded), on_match, scratch=self._scratch("value", self._value_db))
        found: dict[int, dict[int, list[int] | None]] = {}
        for det, end in hits:
            idx = bisect.bisect_left(ends, end)
            if idx >= len(scanned):
                continue
            if idx >= len(texts):
                found.setdefault(copies[idx - len(texts)], {})[det] = None
                continue
            by_det = found.setdefault(idx, {})
            # byte offsets are character offsets only in ASCII text
            ascii_text = len(encoded[idx]) == len(texts[idx])
            if det in by_det and by_det[det] is None:
                continue
            offsets = by_det.setdefault(det, [] if ascii_text else None)
            if offsets is not None:
                offsets.append(end - starts[idx])
        for by_det in found.values():
            for offsets in by_det.values():
                if offsets is not None:
                    offsets.sort()
        return found

    def redact_text(
        self, text: str, detector_ids: Iterable[int], hit_ends: dict[int, list[int] | None] | None = None
    ) -> tuple[str, list[str]] | None:
        """Redacted text and the type names replaced (one per replacement), or None if nothing was found.
        ``hit_ends`` (from candidate_hits) lets the regexes skip the parts of a long text far from any
        trigger hit."""
        ids = list(detector_ids)
        spans = self._find(text, ids, hit_ends)
        norm = pii_normalise.normalise(text) if pii_normalise.may_change(text) else None
        if norm is not None:
            spans = _union(spans, [(*norm.original_span(s, e), d) for s, e, d in self._find(norm.text, ids)])
        if not spans:
            return None
        detector_ids = ids
        if text.lstrip()[:1] in ("{", "[", '"'):
            return self._redact_json_aware(text, spans, detector_ids)
        return self._apply(text, spans)

    def _find(
        self, text: str, detector_ids: Iterable[int], hit_ends: dict[int, list[int] | None] | None = None
    ) -> list[tuple[int, int, int]]:
        """Non-overlapping (start, end, detector id) spans, sorted. Linear in ``len(text)``: every regex
        attempt is confined to a window around trigger hits (windows merged, each searched once, left to
        right) or, without hit offsets, searches resume where the previous match ended; each built-in regex
        costs a bounded amount per start position (bounded repeats, or unbounded ones that cannot backtrack
        across their own input), validators and context checks look at the match and a fixed margin only,
        and overlap checks walk the spans of the types before in step."""
        taken: list[tuple[int, int, int]] = []  # accepted spans of higher-priority detectors, sorted
        for det_id in sorted(detector_ids):  # lower id = higher priority
            det = self.detectors[det_id]
            ends = hit_ends.get(det_id) if hit_ends is not None and det.reach else None
            search = _Search(self, det, text, ends)
            mine: list[tuple[int, int, int]] = []
            t = 0  # first span of ``taken`` that may overlap a span starting at or after pos
            pos = 0
            regroup = -1  # where a search restarted inside a rejected run of groups
            while True:
                m = search.next(pos)
                if m is None:
                    break
                if m.start() == regroup and len(pii_validators.digits_of(m.group(0))) < 13:
                    # the tail of a longer rejected number ("4627 5068 6747 7180" → "5068 6747 7180") only
                    # counts as a card of usual length, not as a 12-digit Maestro that passed Luhn by chance
                    pos = regroup = self._next_group(det, text, m)
                    continue
                if not det.validator(m.group(0)):
                    shorter = self._shrunk(det, text, m) if det.shrink_at else None
                    if shorter is None:
                        # "pid 1000 4000 0000 0000 6": the number before swallowed the card; look again from
                        # the next group, not after the whole rejected match
                        pos = regroup = self._next_group(det, text, m)
                        continue
                    m = shorter
                pos = m.end()
                if (
                    det.needs_context is not None
                    and det.context_ok is not None
                    and det.needs_context(m.group(0))
                    and not det.context_ok(text, m.start(), m.end())
                ):
                    continue
                start, end = m.span("v") if det.partial else m.span()
                if start == end or (mine and mine[-1][1] > start):
                    continue
                while t < len(taken) and taken[t][1] <= start:
                    t += 1
                if t < len(taken) and taken[t][0] < end:
                    continue  # overlaps a match of a type listed before
                mine.append((start, end, det_id))
            if mine:
                taken = list(heapq.merge(taken, mine))
        return taken

    @staticmethod
    def _next_group(det: _Detector, text: str, m: re.Match[str]) -> int:
        start, end = m.span()
        if det.shrink_prefix:
            return end  # phone: a digit run rejected as a whole is not combed for a number inside it
        for i in range(start + 1, end - 1):
            if text[i] in det.shrink_at:
                return i + 1
        return end

    @staticmethod
    def _shrunk(det: _Detector, text: str, m: re.Match[str]) -> re.Match[str] | None:
        start, end = m.span()
        if not text.startswith(det.shrink_prefix, start):
            return None
        for cut in range(end - 1, start, -1):
            # validator first (cheap, rejects most cuts), then the regex (boundaries)
            if text[cut] in det.shrink_at and text[cut - 1].isalnum() and det.validator(text[start:cut]):
                shorter = det.pattern.fullmatch(text, start, cut)
                if shorter is not None:
                    return shorter
        return None

    def _apply(self, text: str, spans: list[tuple[int, int, int]]) -> tuple[str, list[str]]:
        out: list[str] = []
        names: list[str] = []
        last = 0
        for start, end, det_id in spans:
            det = self.detectors[det_id]
            out.append(text[last:start])
            out.append(self.replacement(det.label, text[start:end]))
            names.append(det.name)
            last = end
        out.append(text[last:])
        return "".join(out), names

    def _redact_json_aware(
        self, text: str, spans: list[tuple[int, int, int]], detector_ids: Iterable[int]
    ) -> tuple[str, list[str]]:
        """Replace in place when that keeps valid JSON valid (the usual case: placeholders hold no quotes or
        backslashes); otherwise redact the parsed strings one by one and re-serialize."""
        plain = self._apply(text, spans)
        try:
            json.loads(plain[0])
            return plain
        except (ValueError, RecursionError):
            pass
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to walk: as plain text
            return plain
        ids = list(detector_ids)
        names: list[str] = []

        def walk(node: object) -> object:
            if isinstance(node, str):
                res = self.redact_text(node, ids)
                if res is None:
                    return node
                names.extend(res[1])
                return res[0]
            if isinstance(node, list):
                return [walk(x) for x in node]
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            return node

        try:
            return json.dumps(walk(doc), ensure_ascii=False), names
        except RecursionError:  # too deep to walk: the plain replacement is redacted all the same
            return plain

    def replacement(self, label: str, value: str) -> str:
        if self._hmac_key is None:
            return self._placeholder.format(type=label)
        digest = hmac.new(self._hmac_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return self._hmac_format.format(type=label, hmac=digest[: self._hmac_length])


def _union(a: list[tuple[int, int, int]], b: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Both span lists (each sorted, non-overlapping) as one: overlapping spans become one span covering
    both, labelled with the type listed first."""
    if not b:
        return a
    out: list[tuple[int, int, int]] = []
    for start, end, det in heapq.merge(a, b):
        if out and start < out[-1][1]:
            s0, e0, d0 = out[-1]
            out[-1] = (s0, max(e0, end), min(d0, det))
        else:
            out.append((start, end, det))
    return out


class _Search:
    """Successive matches of one detector in one text, each regex attempt confined to where a match can be.

    With hit offsets and a bounded regex width, a match holding a trigger hit that ends at ``e`` lies in
    ``[e - reach, e + width]``; those windows are merged and each is searched once, left to right, with the
    search cut ``_LOOKAROUND`` characters past the window (further than any lookahead looks), so no character
    is examined by more than one window's searches. Without offsets (non-ASCII text, custom patterns, private
    keys) each search resumes where the last one stopped. ``pos`` never moves back between calls."""

    __slots__ = ("det", "ends", "stats", "text", "w", "windows")

    def __init__(self, stats: PiiScanner, det: _Detector, text: str, ends: list[int] | None) -> None:
        self.stats, self.det, self.text, self.ends = stats, det, text, ends
        self.windows: list[tuple[int, int]] | None = None
        if ends is not None and det.width:
            windows: list[tuple[int, int]] = []
            for e in ends:
                a, b = max(0, e - det.reach), e + det.width
                if windows and a <= windows[-1][1]:
                    if b > windows[-1][1]:
                        windows[-1] = (windows[-1][0], b)
                else:
                    windows.append((a, b))
            self.windows = windows
        self.w = 0

    def _search(self, pos: int, endpos: int) -> re.Match[str] | None:
        m = self.det.pattern.search(self.text, pos, endpos)
        self.stats.regex_calls += 1
        self.stats.regex_chars += (endpos if m is None else m.end()) - pos
        return m

    def next(self, pos: int) -> re.Match[str] | None:
        text, n = self.text, len(self.text)
        if self.ends is None:
            return self._search(pos, n)
        windows = self.windows
        if windows is None:  # unbounded width: skip to the first hit after pos, then an ordinary search
            k = bisect.bisect_right(self.ends, pos)
            if k == len(self.ends):
                return None
            return self._search(max(pos, self.ends[k] - self.det.reach), n)
        while self.w < len(windows):
            a, b = windows[self.w]
            if pos >= b:
                self.w += 1
                continue
            pos = max(pos, a)
            m = self._search(pos, min(n, b + _LOOKAROUND))
            if m is None:
                self.w += 1
                continue
            if m.end() <= b:
                return m
            # ends past the window: only a cut-short lookahead can make that; check it on the whole text
            full = self.det.pattern.match(text, m.start())
            self.stats.regex_calls += 1
            if full is not None:
                return full
            pos = m.start() + 1
        return None


_HEX_LETTERS = frozenset(b"abcdefABCDEF")
_NOT_AFTER_KEY = key_end_checker(
    (
        ExportTraceServiceRequest.DESCRIPTOR,
        ExportLogsServiceRequest.DESCRIPTOR,
        ExportMetricsServiceRequest.DESCRIPTOR,
    )
)
# An AnyValue (an attribute's value, an array element, a log body) holding an int_value (field 3, varint) of
# at least 2^21 (4+ varint bytes: every number of 8 or more digits), or a double_value (field 4, fixed64): the
# numbers that may be a card or phone number. The AnyValue's own tag and length come first: 0x0a in an
# ArrayValue, 0x12 in a KeyValue, 0x2a as a LogRecord's body (test_encoding checks every place an AnyValue can
# be). A double only counts with a magnitude of 2^23..2^64 (its top byte: sign and exponent 0x416-0x43f),
# checked in the match callback: a bounded repeat over the 7 bytes before it made Hyperscan 2x slower.
_NUMBER_VALUE_TRIGGERS: list[tuple[str, bool]] = [
    (r"[\x0a\x12\x2a][\x05-\x0b]\x18[\x80-\xff]{3,9}[\x00-\x7f]", False),
    (r"[\x0a\x12\x2a]\x09\x21", False),
]
_LARGE_DOUBLE_TOP_BYTES = frozenset((0x41, 0x42, 0x43, 0xC1, 0xC2, 0xC3))


def _digit_run_may_start_a_number(raw: bytes, pos: int, string_tags: frozenset[int]) -> bool:
    """False only for a digit run that is certainly the middle of a hex token ("…e8a46309973f…"), where no
    phone or card number can start (their left edge refuses a letter). The byte before a run that starts a
    string is the string's length, which may be a hex letter; the byte before that is then the (last byte
    of the) string field's tag, one of ``string_tags``, or a length continuation byte (>= 0x80): kept."""
    while pos > 0 and 48 <= raw[pos - 1] <= 57:
        pos -= 1
    if pos < 2:
        return True
    before, before2 = raw[pos - 1], raw[pos - 2]
    return before not in _HEX_LETTERS or before2 >= 0x80 or before2 in string_tags


_LOOKAROUND = 64  # more than any lookahead of the built-in patterns looks past a match (tested)


def _max_width(pattern: re.Pattern[str]) -> int:
    """Longest possible match of ``pattern`` (lookarounds excluded), or 0 when it is unbounded."""
    widest = re_parser.parse(pattern.pattern, pattern.flags).getwidth()[1]
    return widest if widest < 1 << 20 else 0


def _compile(patterns: list[tuple[str, bool]]) -> hyperscan.Database:
    db = hyperscan.Database()
    flags = [
        hyperscan.HS_FLAG_PREFILTER | (hyperscan.HS_FLAG_CASELESS if caseless else 0)
        for _, caseless in patterns
    ]
    db.compile(expressions=[p.encode() for p, _ in patterns], ids=list(range(len(patterns))), flags=flags)
    return db
