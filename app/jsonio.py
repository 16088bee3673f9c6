"""JSON for the request path: orjson where it gives the same result as the standard library, else the latter.

orjson parses and writes several times faster than ``json``, but it is not a drop-in replacement: it refuses
the ``NaN``/``Infinity`` literals, UTF-8 BOMs, UTF-16/32 documents and encoded lone surrogates (all of which
``json.loads`` takes), and it reads integers beyond 64 bits as floats. So:

- an upstream's bodies are read (:func:`loads`) by orjson, by ``json`` when orjson refuses them: the same
  values, except that an integer beyond 64 bits is a float. They are only read (for telemetry); what the
  client gets is the text as it came, or re-parsed by ``json`` where the gateway rewrites a chunk;
- a client's request body, which is forwarded, is parsed exactly (:func:`loads_request`), and what the
  gateway cannot forward as standard JSON is refused with a message naming it (:class:`NotPortableJSON`):
  non-finite numbers, integers outside the 64-bit range, unpaired surrogates. ``json.dumps`` had forwarded
  the first two as invalid or lossy JSON; the last failed with a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_FLOAT_FROM_BIG_INT = 2.0**63  # orjson reads an integer outside [_INT_MIN, _INT_MAX] as a float this large


class NotPortableJSON(ValueError):
    """Valid for Python's ``json``, but not JSON the gateway forwards: says what the body contains."""


def _refuse_constant(name: str) -> Any:
    raise NotPortableJSON(f"the JSON body contains {name}, which is not a JSON number")


def _checked_int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise NotPortableJSON(
            f"the JSON body contains an integer of {len(text.lstrip('-'))} digits ({text[:12]}...), "
            "outside the 64-bit range JSON numbers are exchanged in"
        )
    return value


def _checked_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotPortableJSON(f"the JSON body contains the number {text[:24]}, too large for a double")
    return value


def _has_huge_float(value: Any) -> bool:
    """Whether a parsed value holds a float of magnitude >= 2**63 (perhaps an integer orjson widened).
    Proportional to the number of values, not to the length of the text (a regex scan of a 100 KB body
    for a run of 19 digits took milliseconds)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and abs(item) >= _FLOAT_FROM_BIG_INT:
            return True
    return False


def loads(data: bytes) -> Any:
    """``json.loads(data)``, faster, for reading: the same acceptance and errors and the same values, except
    that an integer beyond 64 bits comes back as a float."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # what json takes that orjson does not (NaN, a BOM, UTF-16...), or its error


def loads_request(data: bytes) -> Any:
    """A client's JSON body, exactly as ``json.loads`` reads it; :class:`NotPortableJSON` for what cannot be
    forwarded as standard JSON, ``ValueError`` (json's own message) for what is not JSON at all."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if not _has_huge_float(value):
            return value
    value = json.loads(
        data, parse_constant=_refuse_constant, parse_int=_checked_int, parse_float=_checked_float
    )
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise NotPortableJSON(
            "the JSON body contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text"
        ) from None
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the same document ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)`` writes for what :func:`loads_request` returns (by json for nesting deeper than
    the 254 levels orjson writes)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
