"""Secret-key rules: which attribute keys name a secret (their value is masked whole), in any spelling, and
the Hyperscan patterns that find such a key in raw protobuf bytes written by any encoder.

A key is split into words at separators (anything that is not an ASCII letter or digit) and at case and
digit changes, as identifiers are written: ``clientSecret`` → client, secret; ``X-API-Key`` → x, api, key;
``http.request.header.authorization`` → …, authorization; ``APIKey`` → api, key. A rule is split the same
way. A key is secret when its last words are the rule's words (``db.password``, ``clientSecret``,
``x-api-key``, ``AccessToken``), or its last word is the rule's words written together (``accesstoken``
for ``access_token``); ``gen_ai.usage.input_tokens``, ``password_hash`` and ``tokenizer`` are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_NOT_ALNUM = r"[^A-Za-z0-9]"


def key_words(key: str) -> list[str]:
    """The lower-cased words of ``key``; every ASCII letter and digit of it is in exactly one word."""
    return [w.lower() for w in _WORD.findall(key)]


def rule_text(rule: str) -> str:
    """A rule as it is compared: its words joined (``client_secret`` → ``clientsecret``)."""
    return "".join(key_words(rule))


class SecretKeyRules:
    def __init__(self, rules: Iterable[str]) -> None:
        self.rules = sorted({tuple(w) for w in map(key_words, rules) if w})
        self._by_length: dict[int, set[tuple[str, ...]]] = {}
        for words in self.rules:
            self._by_length.setdefault(len(words), set()).add(words)
        self._joined = frozenset("".join(words) for words in self.rules)

    def is_secret(self, key: str) -> bool:
        words = key_words(key)
        if not words:
            return False
        if words[-1] in self._joined:
            return True
        return any(tuple(words[-n:]) in rules for n, rules in self._by_length.items() if n <= len(words))

    def raw_patterns(self) -> list[str]:
        """Hyperscan patterns (to be compiled caseless) that match in the serialized bytes of every key
        ``is_secret`` accepts, whatever the field order or the length of the key: the rule's words in order,
        with any separators between them. A match ends at the rule's last character; the scanner then checks
        the byte after it (``key_end_checker``)."""
        return [f"{_NOT_ALNUM}*".join(re.escape(w) for w in words) for words in self.rules]


def _tag_first_bytes(roots: Iterable[Descriptor]) -> frozenset[int]:
    """The first byte of the tag of every field (in each wire type a valid encoder may use for it) of every
    message reachable from ``roots``: what can follow the last byte of a key in the wire format."""
    out: set[int] = set()
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        message = todo.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        for f in message.fields:
            if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type is not None:
                todo.append(f.message_type)
            for wire_type in _wire_types(f):
                tag = f.number << 3 | wire_type
                out.add(tag if tag < 0x80 else (tag & 0x7F) | 0x80)
    return frozenset(out)


_FIXED64 = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
_FIXED32 = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}
_LENGTH = {FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE}


def _wire_types(f: FieldDescriptor) -> tuple[int, ...]:
    if f.type in _LENGTH:
        return (2,)
    native = 1 if f.type in _FIXED64 else 5 if f.type in _FIXED32 else 0
    return (native, 2) if f.is_repeated else (native,)  # repeated scalars: packed or not


def key_end_checker(roots: Iterable[Descriptor]) -> frozenset[int]:
    """Bytes that cannot follow the last character of a secret key: an ASCII letter or digit would continue
    its last word, unless it is the first byte of the next field's tag."""
    tags = _tag_first_bytes(roots)
    alnum = {c for c in range(0x30, 0x7B) if chr(c).isalnum()}
    return frozenset(alnum - tags)
