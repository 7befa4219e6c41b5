"""A small synchronous client for the simulator's control API (/_sim), for tests and scripts.

sim = SimControl("http://127.0.0.1:8765")
sim.add_fault(kind="error", venue="binance", ops=["create_order"], count=1, place=True)
sim.orders(venue="binance", client_id="arb-1-buy")
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class SimControlError(Exception):
    """The control API refused a command (the message is its answer)."""


class SimControl:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/") + "/_sim"
        self._timeout = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        params = {k: v for k, v in query.items() if v is not None}
        url = self._base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise SimControlError(
                f"{method} {path}: {error.code} {error.read().decode(errors='replace')}"
            ) from None

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    # ----- faults

    def add_fault(self, kind: str, **rule: Any) -> int:
        """Add a fault rule (see arbitrage.sim.faults.FaultRule for the fields); its id."""
        return int(self._call("POST", "/faults", {"kind": kind, **rule})["id"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults"))

    def remove_fault(self, rule_id: int) -> bool:
        return bool(self._call("DELETE", f"/faults/{rule_id}")["ok"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # ----- state

    def orders(
        self, venue: str | None = None, client_id: str | None = None, api_key: str | None = None
    ) -> list[dict[str, Any]]:
        return list(self._call("GET", "/orders", venue=venue, client_id=client_id, api_key=api_key)["orders"])

    def balances(self, venue: str | None = None, api_key: str | None = None) -> dict[str, Any]:
        return dict(self._call("GET", "/balances", venue=venue, api_key=api_key))

    def set_balance(self, venue: str, api_key: str, asset: str, free: float | str) -> dict[str, Any]:
        body = {"venue": venue, "api_key": api_key, "asset": asset, "free": str(free)}
        return dict(self._call("POST", "/balances", body))

    def requests(
        self, venue: str | None = None, op: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        return list(self._call("GET", "/requests", venue=venue, op=op, limit=limit)["requests"])

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    # ----- market

    def book(self, venue: str, market: str, depth: int = 20) -> dict[str, Any]:
        return dict(self._call("GET", "/books", venue=venue, market=market, depth=depth))

    def freeze(self, venue: str, market: str | None = None, frozen: bool = True) -> None:
        """Stop (or restart) a book, or all of a venue's books, following the market: stale data."""
        body: dict[str, Any] = {"venue": venue, "freeze": frozen}
        if market is not None:
            body["market"] = market
        self._call("POST", "/books", body)

    def set_book(
        self,
        venue: str,
        market: str,
        bids: list[list[Any]] | None = None,
        asks: list[list[Any]] | None = None,
    ) -> None:
        """Set a book's levels ([price, qty], best first); it stays frozen until `freeze(..., False)`."""
        body: dict[str, Any] = {"venue": venue, "market": market}
        if bids is not None:
            body["bids"] = bids
        if asks is not None:
            body["asks"] = asks
        self._call("POST", "/books", body)

    def steer(
        self,
        asset: str | None = None,
        premium_pct: float | None = None,
        set_mean: bool = False,
        fx_rate: float | None = None,
    ) -> dict[str, Any]:
        """Set a coin's Upbit premium (and optionally the mean it reverts to) or the FX rate now."""
        body: dict[str, Any] = {"set_mean": set_mean}
        if premium_pct is not None:
            body.update(asset=asset, premium_pct=premium_pct)
        if fx_rate is not None:
            body["fx_rate"] = fx_rate
        return dict(self._call("POST", "/market", body))

    # ----- streams

    def drop_streams(self, venue: str | None = None, abort: bool = False) -> int:
        """Cut every WebSocket connection (of one venue, or all); how many were cut."""
        return int(self._call("POST", "/ws", {"venue": venue, "drop": True, "abort": abort})["dropped"])

    def refuse_streams(self, seconds: float, venue: str | None = None) -> None:
        self._call("POST", "/ws", {"venue": venue, "refuse_s": seconds})

    def pause_streams(self, paused: bool = True, venue: str | None = None) -> None:
        self._call("POST", "/ws", {"venue": venue, "pause": paused})
