"""Seeded prompt generation; a share of prompts carries realistic-looking PII (all of it synthetic)."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

_FIRST = (
    "alice",
    "bob",
    "carol",
    "dmitri",
    "esther",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jonas",
    "kemi",
    "li",
)
_LAST = ("smith", "garcia", "müller", "okafor", "tanaka", "novak", "silva", "khan", "dubois", "rossi")
_DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example")

_TASKS = (
    "Refactor this function so it streams results instead of building a list: {code}",
    "Explain why this test is flaky and propose a fix: {code}",
    "Write a docstring for the following Python code: {code}",
    "Summarise the following support ticket in two sentences: {ticket}",
    "Draft a polite reply to this customer message: {ticket}",
    "Classify the sentiment of this review as positive, neutral or negative: {ticket}",
    "Translate into French: {ticket}",
    "Suggest three names for a CLI tool that {purpose}.",
    "What are the trade-offs of {purpose}? Answer briefly.",
)
_CODE = (
    "def load(path):\n    return [json.loads(l) for l in open(path)]",
    "async def fetch(urls):\n    return [await client.get(u) for u in urls]",
    "for i in range(len(items)):\n    if items[i] == target: return i",
    "SELECT * FROM orders WHERE created_at > now() - interval '1 day'",
)
_TICKETS = (
    "My order arrived damaged and I would like a replacement as soon as possible.",
    "The export button does nothing when I click it in the reports page.",
    "I was charged twice for the same subscription this month.",
    "Great product, but the setup instructions were confusing.",
)
_PURPOSES = (
    "batches OTLP exports",
    "redacts secrets from logs",
    "prices LLM calls",
    "tails Kubernetes events",
)
_SYSTEM = (
    "You are a concise senior engineer.",
    "You are a helpful support assistant.",
    "Answer in plain English.",
)

PII_KINDS = ("email", "phone", "credit_card", "api_key")


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def fake_pii(kind: str, rng: random.Random) -> str:
    if kind == "email":
        return f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
    if kind == "phone":
        return rng.choice(
            (
                f"+1 ({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}",
                f"+44 20 7946 {rng.randint(0, 999):04d}",
                f"+49 30 {rng.randint(1000000, 9999999)}",
            )
        )
    if kind == "credit_card":
        prefix = rng.choice(("4", "51", "37"))
        if prefix == "37":  # American Express: 15 digits, printed 4-6-5
            card = _luhn_complete(prefix, 15, rng)
            return f"{card[:4]} {card[4:10]} {card[10:]}"
        card = _luhn_complete(prefix, 16, rng)
        return " ".join(card[i : i + 4] for i in range(0, 16, 4))
    if kind == "api_key":
        alphabet = string.ascii_letters + string.digits
        return rng.choice(
            (
                "sk-proj-" + "".join(rng.choice(alphabet) for _ in range(40)),
                "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
                "ghp_" + "".join(rng.choice(alphabet) for _ in range(36)),
            )
        )
    raise ValueError(kind)


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]
    pii_kinds: tuple[str, ...]
    # (kind, value) of every injected value, so a check can look for exactly these in the exports
    pii_values: tuple[tuple[str, str], ...] = ()


def make_prompt(rng: random.Random, pii_rate: float) -> Prompt:
    task = rng.choice(_TASKS).format(
        code=rng.choice(_CODE), ticket=rng.choice(_TICKETS), purpose=rng.choice(_PURPOSES)
    )
    kinds: tuple[str, ...] = ()
    values: list[tuple[str, str]] = []
    if rng.random() < pii_rate:
        kinds = tuple(rng.sample(PII_KINDS, rng.randint(1, 2)))
        details = []
        for kind in kinds:
            value = fake_pii(kind, rng)
            values.append((kind, value))
            details.append(
                {
                    "email": f"You can reach me at {value}.",
                    "phone": f"Call me back on {value}.",
                    "credit_card": f"The card on file is {value}.",
                    "api_key": f"Our key is {value} if you need to reproduce it.",
                }[kind]
            )
        task = f"{task} {' '.join(details)}"
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": rng.choice(_SYSTEM)})
    if rng.random() < 0.25:  # a follow-up turn in an ongoing conversation
        messages.append({"role": "user", "content": rng.choice(_TICKETS)})
        messages.append({"role": "assistant", "content": "Thanks, could you share more details?"})
    messages.append({"role": "user", "content": task})
    return Prompt(messages=messages, pii_kinds=kinds, pii_values=tuple(values))
