"""Upbit's wire conventions in the simulator: JWT bearer auth, error bodies, numbers and times.

Errors are {"error": {"name": ..., "message": ...}} with Upbit's statuses; ccxt's upbit maps the
names (insufficient_funds_*, order_not_found, jwt_verification, ...) to its exception classes and
anything else to ExchangeError. Fault answers (429, 418, 5xx) are plain text, so ccxt falls back
to its HTTP status map: RateLimitExceeded, DDoSProtection, ExchangeNotAvailable, RequestTimeout.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from aiohttp import web

from arbitrage.sim.faults import Handler, retry_after_header

KST = timezone(timedelta(hours=9))


class UpbitFailure(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        self.status, self.name, self.message = status, name, message
        super().__init__(f"{name}: {message}")


def num(value: Decimal) -> str:
    """Upbit's plain decimal strings: "140000000", "0.0015"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def kst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).astimezone(KST).isoformat(timespec="seconds")


def replying(handler: Handler) -> Handler:
    """Turn an UpbitFailure raised by `handler` into Upbit's error body."""

    async def reply(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UpbitFailure as failure:
            body = {"error": {"name": failure.name, "message": failure.message}}
            return web.json_response(body, status=failure.status)

    return reply


class UpbitReplies:
    def rate_limited(self, retry_after_s: float) -> web.Response:
        return web.Response(
            status=429, text="Too many API requests.", headers=retry_after_header(retry_after_s)
        )

    def banned(self, retry_after_s: float) -> web.Response:
        return web.Response(
            status=418, text="Too many API requests; blocked.", headers=retry_after_header(retry_after_s)
        )

    def server_error(self, status: int) -> web.Response:
        return web.Response(status=status, text=f"{status} Server Error")


def api_key(request: web.Request) -> str:
    """The access key from a well-formed `Authorization: Bearer <jwt>`; the signature is not checked."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise UpbitFailure(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    parts = auth[len("Bearer ") :].split(".")
    if len(parts) != 3:
        raise UpbitFailure(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        raise UpbitFailure(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.") from None
    key = payload.get("access_key") if isinstance(payload, dict) else None
    if not key or not payload.get("nonce"):
        raise UpbitFailure(401, "invalid_access_key", "잘못된 엑세스 키입니다.")
    return str(key)


async def params(request: web.Request) -> dict[str, str]:
    """Query parameters, plus the JSON body of a POST (ccxt sends orders as JSON)."""
    found = {k: v for k, v in request.query.items() if not k.endswith("[]")}
    if request.method == "POST" and request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            raise UpbitFailure(400, "invalid_query_payload", "요청 본문이 올바른 JSON이 아닙니다.") from None
        if not isinstance(body, dict):
            raise UpbitFailure(400, "invalid_query_payload", "요청 본문이 올바른 JSON이 아닙니다.")
        found.update({k: str(v) for k, v in body.items() if v is not None})
    return found


def positive(found: dict[str, str], name: str) -> Decimal:
    raw = found.get(name)
    if not raw:
        raise UpbitFailure(400, "validation_error", f"{name} is missing")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0:
        raise UpbitFailure(400, "validation_error", f"{name} does not have a valid value")
    return value
