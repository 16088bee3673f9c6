"""JSON for the request path: orjson where it gives the same result as the standard library, else the latter.

orjson parses and writes several times faster than ``json``, but it is not a drop-in replacement: it refuses
the ``NaN``/``Infinity`` literals, UTF-8 BOMs, UTF-16/32 documents and encoded lone surrogates (all of which
``json.loads`` takes), and it silently turns integers beyond 64 bits into floats. So:

- an upstream's bodies (:func:`loads`) are parsed exactly as ``json.loads`` would: by orjson when the text has
  no digit run long enough to be such an integer, by ``json`` when orjson refuses the text or it has one;
- a client's request body (:func:`loads_request`) is parsed the same way, except that what the gateway cannot
  forward as standard JSON is refused with a message naming it (:class:`NotPortableJSON`): non-finite
  numbers, integers outside the 64-bit range, unpaired surrogates. ``json.dumps`` would have forwarded the
  first two as invalid or lossy JSON, and the last failed with a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# A run of 19+ digits may be an integer orjson reads as a float (below -2**63 or above 2**64 - 1).
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class NotPortableJSON(ValueError):
    """Valid for Python's ``json``, but not JSON the gateway forwards: says what the body contains."""


def _refuse_constant(name: str) -> Any:
    raise NotPortableJSON(f"the JSON body contains {name}, which is not a JSON number")


def _checked_int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise NotPortableJSON(
            f"the JSON body contains the integer {text[:12]}... ({len(text.lstrip('-'))} digits), "
            "outside the 64-bit range JSON numbers are exchanged in"
        )
    return value


def _checked_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotPortableJSON(f"the JSON body contains the number {text[:24]}, too large for a double")
    return value


def loads(data: bytes) -> Any:
    """``json.loads(data)``, faster: the same value, the same acceptance and the same errors."""
    if _LONG_DIGIT_RUN.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # maybe text json takes (NaN, a BOM, UTF-16...), or its error message is wanted
    return json.loads(data)


def loads_request(data: bytes) -> Any:
    """A client's JSON body: as :func:`loads`, but :class:`NotPortableJSON` for what cannot be forwarded as
    standard JSON; ``ValueError`` (json's own message) for what is not JSON at all."""
    if _LONG_DIGIT_RUN.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
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
    """Compact UTF-8 JSON, as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()``
    writes it for what :func:`loads_request` returns (orjson refuses nesting deeper than 254: json then)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
