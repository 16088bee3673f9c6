"""Drive the gateway at a target rate for a bounded time and summarise what happened."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from app.loadgen.prompts import make_prompt

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "claude-3-5-sonnet-latest")


@dataclass(frozen=True)
class LoadConfig:
    base_url: str
    rate: float
    duration_s: float
    concurrency: int = 32
    api_keys: tuple[str, ...] = ()
    pii_rate: float = 0.05
    stream_share: float = 0.3
    models: tuple[str, ...] = DEFAULT_MODELS
    seed: int = 1
    feedback_share: float = 0.0
    timeout_s: float = 30.0
    drain_s: float = 10.0  # how long to wait for in-flight requests after the duration
    pii_values_path: str | None = None  # JSON lines {"kind", "value"}: every PII value injected


@dataclass
class Stats:
    requests: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    streamed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    pii_prompts: int = 0
    feedback_sent: int = 0
    latencies: list[float] = field(default_factory=list)

    def summary(self, elapsed: float, target_rate: float) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": dict(sorted(self.errors.items())),
            "streamed": self.streamed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "pii_prompts": self.pii_prompts,
            "feedback_sent": self.feedback_sent,
            "elapsed_s": round(elapsed, 3),
            "target_rps": target_rate,
            "achieved_rps": round(self.requests / elapsed, 2) if elapsed > 0 else 0.0,
            "latency_p50_ms": pct(0.50),
            "latency_p99_ms": pct(0.99),
        }


def _count_usage(stats: Stats, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
    stats.completion_tokens += int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    stats.cached_tokens += int(details.get("cached_tokens") or 0)


class LoadGenerator:
    def __init__(self, config: LoadConfig, progress: TextIO | None = sys.stderr) -> None:
        self.config = config
        self.stats = Stats()
        self._rng = random.Random(config.seed)
        self._progress = progress
        self._in_flight = 0
        self._pii_out: TextIO | None = None

    async def _one(self, client: httpx.AsyncClient, body: dict[str, Any], key: str | None) -> None:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        stats = self.stats
        started = time.perf_counter()
        response_id: str | None = None
        try:
            if body.get("stream"):
                async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        stats.errors[str(resp.status_code)] += 1
                        return
                    done = False
                    async for line in resp.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            break
                        chunk = json.loads(data)
                        if "error" in chunk:
                            stats.errors["stream_error"] += 1
                            return
                        response_id = response_id or chunk.get("id")
                        _count_usage(stats, chunk.get("usage"))
                    if not done:
                        stats.errors["stream_incomplete"] += 1
                        return
                stats.streamed += 1
            else:
                resp = await client.post("/v1/chat/completions", json=body, headers=headers)
                if resp.status_code != 200:
                    stats.errors[str(resp.status_code)] += 1
                    return
                data = resp.json()
                response_id = data.get("id")
                _count_usage(stats, data.get("usage"))
        except httpx.RemoteProtocolError:
            stats.errors["stream_broken"] += 1
            return
        except httpx.TimeoutException:
            stats.errors["client_timeout"] += 1
            return
        except httpx.HTTPError:
            stats.errors["connection_error"] += 1
            return
        stats.ok += 1
        stats.latencies.append(time.perf_counter() - started)
        if response_id and self._rng.random() < self.config.feedback_share:
            score = self._rng.choice((1.0, 1.0, 1.0, 0.5, 0.0))
            fb = await client.post(
                "/v1/feedback", json={"response_id": response_id, "score": score}, headers=headers
            )
            if fb.status_code == 200:
                stats.feedback_sent += 1

    def _next_body(self) -> tuple[dict[str, Any], str | None]:
        rng, cfg = self._rng, self.config
        prompt = make_prompt(rng, cfg.pii_rate)
        if prompt.pii_kinds:
            self.stats.pii_prompts += 1
        if self._pii_out is not None:
            for kind, value in prompt.pii_values:
                self._pii_out.write(json.dumps({"kind": kind, "value": value}) + "\n")
        body: dict[str, Any] = {
            "model": rng.choice(cfg.models),
            "messages": prompt.messages,
            "max_tokens": rng.choice((32, 64, 128, 256)),
        }
        if rng.random() < 0.5:
            body["temperature"] = round(rng.uniform(0, 1.2), 2)
        if rng.random() < 0.3:
            body["user"] = f"user-{rng.randint(1, 50)}"
        if rng.random() < cfg.stream_share:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        key = rng.choice(cfg.api_keys) if cfg.api_keys else None
        return body, key

    def _print_progress(self, elapsed: float) -> None:
        if self._progress is None:
            return
        s = self.stats
        errors = sum(s.errors.values())
        start = "\r" if self._progress.isatty() else ""
        end = "" if self._progress.isatty() else "\n"
        self._progress.write(
            f"{start}[loadgen] {elapsed:5.1f}s sent={s.requests} ok={s.ok} errors={errors} "
            f"in_flight={self._in_flight} rate={s.requests / max(elapsed, 1e-9):.1f}/s   {end}"
        )
        self._progress.flush()

    async def _tracked(
        self, client: httpx.AsyncClient, body: dict[str, Any], key: str | None, slots: asyncio.Semaphore
    ) -> None:
        self._in_flight += 1
        try:
            await self._one(client, body, key)
        finally:
            self._in_flight -= 1
            slots.release()

    async def run(self) -> dict[str, Any]:
        if self.config.pii_values_path is None:
            return await self._run()
        with open(self.config.pii_values_path, "w") as self._pii_out:
            try:
                return await self._run()
            finally:
                self._pii_out.flush()

    async def _run(self) -> dict[str, Any]:
        cfg = self.config
        slots = asyncio.Semaphore(cfg.concurrency)
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=cfg.base_url, timeout=cfg.timeout_s, limits=limits) as client:
            start = time.perf_counter()
            deadline = start + cfg.duration_s
            next_at = start
            last_progress = start
            while True:
                now = time.perf_counter()
                if now - last_progress >= 1.0:
                    self._print_progress(now - start)
                    last_progress = now
                if next_at >= deadline:
                    break
                if next_at > now:
                    await asyncio.sleep(min(next_at - now, 0.25))
                    continue
                # Bounded concurrency: when every slot is busy we wait, and the achieved rate shows it.
                try:
                    await asyncio.wait_for(slots.acquire(), timeout=max(0.0, deadline - time.perf_counter()))
                except TimeoutError:
                    break
                body, key = self._next_body()
                self.stats.requests += 1
                task = asyncio.create_task(self._tracked(client, body, key, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_at += self._rng.expovariate(cfg.rate) if cfg.rate > 0 else cfg.duration_s
            sent_elapsed = time.perf_counter() - start
            if tasks:
                _, pending = await asyncio.wait(set(tasks), timeout=cfg.drain_s)
                for task in pending:
                    task.cancel()
                    self.stats.errors["cancelled_at_end"] += 1
                await asyncio.gather(*pending, return_exceptions=True)
            self._print_progress(time.perf_counter() - start)
            if self._progress is not None and self._progress.isatty():
                self._progress.write("\n")
        return self.stats.summary(max(sent_elapsed, 1e-9), cfg.rate)
