"""Fault injection on command: latency, 5xx, 429 then 418, timeouts, rejected and partial fills.

Rules are added through the control API and matched per (venue, operation). `count` makes a rule
apply to the next N matching requests, `rate` to a seeded random share of them. A 5xx or timeout
rule with `place: true` runs the request first (the order IS placed) and then loses the answer:
the UNKNOWN outcome a bot must resolve by looking the order up. After a 429 the venue expects the
client to wait Retry-After; each request inside that window counts as a violation, and
`ban_after` violations earn a 418 ban of `ban_s` seconds, as Binance and Upbit escalate.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arbitrage.clock import Clock

OPS = (
    "markets",
    "time",
    "order_book",
    "balance",
    "fees",
    "create_order",
    "test_order",
    "fetch_order",
    "cancel_order",
    "open_orders",
    "closed_orders",
    "my_trades",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FaultKind = Literal["latency", "error", "rate_limit", "timeout", "reject", "partial_fill"]


class FaultRule(BaseModel):
    """One fault, as posted to /_sim/faults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    venue: Literal["binance", "upbit", "*"] = "*"
    ops: tuple[str, ...] = ("*",)
    count: int | None = Field(default=None, ge=1)  # the next N matching requests; None: until removed
    rate: float = Field(default=1.0, ge=0, le=1)
    ms: float = Field(default=0.0, ge=0)  # latency
    status: int = Field(default=503, ge=500, le=599)  # error
    place: bool = False  # error/timeout: run the request, then lose its answer
    retry_after_s: float = Field(default=1.0, gt=0)  # rate_limit
    ban_after: int = Field(default=3, ge=1)
    ban_s: float = Field(default=60.0, gt=0)
    hang_s: float = Field(default=30.0, gt=0)  # timeout: longer than the client waits
    fill_ratio: float = Field(default=0.5, ge=0, lt=1)  # partial_fill

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [op for op in ops if op != "*" and op not in OPS]
        if unknown:
            raise ValueError(f"unknown ops {unknown}; known: {', '.join(OPS)} or *")
        return ops

    def applies(self, venue: str, op: str) -> bool:
        return self.venue in ("*", venue) and ("*" in self.ops or op in self.ops)


class ErrorReplies(Protocol):
    """How one venue words the faults it suffers."""

    def rate_limited(self, retry_after_s: float) -> web.Response: ...

    def banned(self, retry_after_s: float) -> web.Response: ...

    def server_error(self, status: int) -> web.Response: ...


@dataclass(slots=True)
class _Limit:
    limited_until: float = 0.0
    banned_until: float = 0.0
    violations: int = 0
    ban_after: int = 3
    ban_s: float = 60.0


@dataclass(slots=True)
class _Active:
    rule: FaultRule
    left: int | None


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class FaultInjector:
    def __init__(self, rng: random.Random, clock: Clock, log_size: int = 5000) -> None:
        self._rng = rng
        self._clock = clock
        self._rules: dict[int, _Active] = {}
        self._ids = itertools.count(1)
        self._limits: dict[str, _Limit] = {}
        self.requests: deque[dict[str, object]] = deque(maxlen=log_size)

    def add(self, rule: FaultRule) -> int:
        rule_id = next(self._ids)
        self._rules[rule_id] = _Active(rule, rule.count)
        return rule_id

    def remove(self, rule_id: int) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> None:
        self._rules.clear()
        self._limits.clear()

    def listing(self) -> list[dict[str, object]]:
        return [{"id": i, "left": a.left, **a.rule.model_dump()} for i, a in self._rules.items()]

    def draw(self, venue: str, op: str, kind: FaultKind) -> FaultRule | None:
        """The first rule of `kind` that fires for this request; spends one of its count."""
        for rule_id, active in list(self._rules.items()):
            rule = active.rule
            if rule.kind != kind or not rule.applies(venue, op):
                continue
            if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                continue
            if active.left is not None:
                active.left -= 1
                if active.left <= 0:
                    del self._rules[rule_id]
            return rule
        return None

    def guard(self, venue: str, op: str, handler: Handler, replies: ErrorReplies) -> Handler:
        """Wrap a venue handler with the rate-limit gate, the request log and the fault rules."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            started = self._clock.monotonic()
            response = await self._answer(venue, op, handler, replies, request)
            self.requests.append(
                {
                    "venue": venue,
                    "op": op,
                    "method": request.method,
                    "path": request.path_qs,
                    "status": response.status,
                    "ms": round((self._clock.monotonic() - started) * 1000.0, 1),
                    "ts": self._clock.time(),
                }
            )
            return response

        return guarded

    async def _answer(
        self, venue: str, op: str, handler: Handler, replies: ErrorReplies, request: web.Request
    ) -> web.StreamResponse:
        now = self._clock.monotonic()
        limit = self._limits.setdefault(venue, _Limit())
        if limit.banned_until > now:
            return replies.banned(limit.banned_until - now)
        if limit.limited_until > now:
            limit.violations += 1
            if limit.violations >= limit.ban_after:
                limit.banned_until = now + limit.ban_s
                return replies.banned(limit.ban_s)
            return replies.rate_limited(limit.limited_until - now)
        latency = self.draw(venue, op, "latency")
        if latency is not None:
            await asyncio.sleep(latency.ms / 1000.0)
        rate = self.draw(venue, op, "rate_limit")
        if rate is not None:
            self._limits[venue] = _Limit(now + rate.retry_after_s, 0.0, 0, rate.ban_after, rate.ban_s)
            return replies.rate_limited(rate.retry_after_s)
        error = self.draw(venue, op, "error")
        if error is not None:
            if error.place:
                await handler(request)
            return replies.server_error(error.status)
        timeout = self.draw(venue, op, "timeout")
        if timeout is not None:
            if timeout.place:
                await handler(request)
            await asyncio.sleep(timeout.hang_s)
            return replies.server_error(504)
        return await handler(request)
