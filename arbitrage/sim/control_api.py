"""The simulator's control API under /_sim: faults, orders, balances, books, streams, reset.

GET    /_sim/health                       venues, markets, open stream counts
GET    /_sim/faults                       active fault rules (with what is left of their count)
POST   /_sim/faults      {FaultRule}      add one; answers {"id": n}
DELETE /_sim/faults[/{id}]                remove one, or all (and lift any 429/418 state)
GET    /_sim/orders?venue=&client_id=&api_key=   every order ever received
GET    /_sim/balances?venue=&api_key=     {venue: {api_key: {asset: {free, locked}}}}
POST   /_sim/balances    {venue, api_key, asset, free}
GET    /_sim/books?venue=&market=&depth=  one book with update_id, changed_ms, frozen
POST   /_sim/books       {venue, market?, freeze?, bids?, asks?}   freeze / set levels
POST   /_sim/market      {asset?, premium_pct?, set_mean?, fx_rate?}  steer the price model
POST   /_sim/ws          {venue?, drop?, abort?, refuse_s?, pause?}  stream faults
GET    /_sim/requests?venue=&op=&limit=   the venue requests received, newest last
POST   /_sim/reset                        orders, balances, faults, books back to the seed
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from arbitrage.sim.driver import MarketDriver
from arbitrage.sim.exchange import SimVenue
from arbitrage.sim.faults import FaultInjector, FaultRule
from arbitrage.sim.market import Level
from arbitrage.sim.streams import StreamHub

PREFIX = "/_sim"


class ControlFailure(Exception):
    pass


def _levels(raw: Any, name: str) -> list[Level]:
    try:
        return [(Decimal(str(p)), Decimal(str(q))) for p, q in raw]
    except (TypeError, ValueError, InvalidOperation):
        raise ControlFailure(f"{name}: a list of [price, qty] pairs") from None


class ControlApi:
    def __init__(
        self,
        venues: Mapping[str, SimVenue],
        faults: FaultInjector,
        hub: StreamHub,
        driver: MarketDriver,
        reset: Callable[[], Awaitable[None]],
        seed: int,
    ) -> None:
        self._venues = venues
        self._faults = faults
        self._hub = hub
        self._driver = driver
        self._reset = reset
        self._seed = seed

    def routes(self) -> list[web.RouteDef]:
        table: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            ("GET", "/health", self._health),
            ("GET", "/faults", self._list_faults),
            ("POST", "/faults", self._add_fault),
            ("DELETE", "/faults", self._clear_faults),
            ("DELETE", "/faults/{rule_id}", self._remove_fault),
            ("GET", "/orders", self._orders),
            ("GET", "/balances", self._balances),
            ("POST", "/balances", self._set_balance),
            ("GET", "/books", self._book),
            ("POST", "/books", self._set_book),
            ("POST", "/market", self._steer),
            ("POST", "/ws", self._streams),
            ("GET", "/requests", self._requests),
            ("POST", "/reset", self._do_reset),
        ]
        return [web.route(method, PREFIX + path, self._replying(handler)) for method, path, handler in table]

    def _replying(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def reply(request: web.Request) -> web.StreamResponse:
            try:
                return web.json_response(await handler(request))
            except ControlFailure as failure:
                return web.json_response({"error": str(failure)}, status=400)
            except (KeyError, TypeError, ValueError) as bad:
                return web.json_response({"error": f"bad request: {bad!r}"}, status=400)

        return reply

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            raise ControlFailure("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise ControlFailure("the body must be a JSON object")
        return body

    def _venue(self, name: Any) -> SimVenue:
        venue = self._venues.get(str(name))
        if venue is None:
            raise ControlFailure(f"venue must be one of {sorted(self._venues)}, got {name!r}")
        return venue

    async def _health(self, request: web.Request) -> dict[str, Any]:
        venues = {
            n: {"markets": sorted(v.markets), "ws_connections": self._hub.count(n)}
            for n, v in self._venues.items()
        }
        return {"ok": True, "seed": self._seed, "venues": venues}

    async def _list_faults(self, request: web.Request) -> list[dict[str, object]]:
        return self._faults.listing()

    async def _add_fault(self, request: web.Request) -> dict[str, int]:
        try:
            rule = FaultRule.model_validate(await self._body(request))
        except ValidationError as invalid:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
            raise ControlFailure(problems) from None
        return {"id": self._faults.add(rule)}

    async def _clear_faults(self, request: web.Request) -> dict[str, bool]:
        self._faults.clear()
        return {"ok": True}

    async def _remove_fault(self, request: web.Request) -> dict[str, bool]:
        raw = request.match_info["rule_id"]
        return {"ok": raw.isdigit() and self._faults.remove(int(raw))}

    async def _orders(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        orders = [
            o.summary()
            for name, venue in self._venues.items()
            if q.get("venue") in (None, name)
            for o in venue.orders.values()
            if q.get("client_id") in (None, o.client_id) and q.get("api_key") in (None, o.api_key)
        ]
        orders.sort(key=lambda o: o["created_ms"])
        return {"orders": orders}

    async def _balances(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        return {
            name: {
                key: venue.wallet(key).snapshot()
                for key in venue.accounts.api_keys()
                if q.get("api_key") in (None, key)
            }
            for name, venue in self._venues.items()
            if q.get("venue") in (None, name)
        }

    async def _set_balance(self, request: web.Request) -> dict[str, Any]:
        body = await self._body(request)
        venue = self._venue(body.get("venue"))
        try:
            amount = Decimal(str(body["free"]))
            key, asset = str(body["api_key"]), str(body["asset"])
        except (KeyError, InvalidOperation):
            raise ControlFailure("needs venue, api_key, asset and free (a number)") from None
        venue.wallet(key).set_free(asset, amount)
        return venue.wallet(key).snapshot()

    def _the_book(self, venue_name: Any, market: Any) -> tuple[SimVenue, str]:
        venue = self._venue(venue_name)
        if market not in venue.books:
            raise ControlFailure(f"market must be one of {sorted(venue.books)}, got {market!r}")
        return venue, str(market)

    async def _book(self, request: web.Request) -> dict[str, Any]:
        venue, market = self._the_book(request.query.get("venue"), request.query.get("market"))
        book = venue.books[market]
        depth = int(request.query.get("depth", "20"))
        bids, asks = book.top(depth)
        return {
            "venue": venue.name,
            "market": market,
            "update_id": book.update_id,
            "changed_ms": book.changed_ms,
            "frozen": book.frozen,
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }

    async def _set_book(self, request: web.Request) -> dict[str, Any]:
        """Freeze or thaw books (one market, or every market of the venue), or set one book's levels."""
        body = await self._body(request)
        venue = self._venue(body.get("venue"))
        markets = [self._the_book(venue.name, body["market"])[1]] if "market" in body else list(venue.books)
        levels_given = "bids" in body or "asks" in body
        if levels_given:
            if len(markets) != 1:
                raise ControlFailure("setting levels needs a market")
            book = venue.books[markets[0]]
            bids = _levels(body.get("bids", [[p, q] for p, q in book.bids]), "bids")
            asks = _levels(body.get("asks", [[p, q] for p, q in book.asks]), "asks")
            book.replace(sorted(bids, reverse=True), sorted(asks), self._driver.now_ms())
        freeze = bool(body.get("freeze", levels_given))  # set levels stay put unless thawed
        for market in markets:
            venue.books[market].frozen = freeze
        venue.sweep(self._driver.now_ms())
        return {"markets": markets, "frozen": freeze}

    async def _steer(self, request: web.Request) -> dict[str, Any]:
        body = await self._body(request)
        model = self._driver.model
        if "premium_pct" in body:
            asset = str(body.get("asset", ""))
            if asset not in model.premium:
                raise ControlFailure(f"asset must be one of {sorted(model.premium)}, got {asset!r}")
            model.premium[asset] = float(body["premium_pct"])
            if body.get("set_mean"):
                model.premium_mean = float(body["premium_pct"])
        if "fx_rate" in body:
            model.fx = float(body["fx_rate"])
        self._driver.refresh()
        return {"ref": model.ref, "premium_pct": model.premium, "fx": model.fx, "usdt_krw": model.usdt_krw()}

    async def _streams(self, request: web.Request) -> dict[str, Any]:
        body = await self._body(request)
        name = body.get("venue")
        names = [self._venue(name).name] if name is not None else list(self._venues)
        dropped = 0
        if body.get("refuse_s"):
            for n in names:
                self._hub.refuse(n, float(body["refuse_s"]))
        if "pause" in body:
            for n in names:
                self._hub.pause(n, bool(body["pause"]))
        if body.get("drop") or body.get("abort"):
            for n in names:
                dropped += await self._hub.drop(n, abort=bool(body.get("abort")))
        return {"dropped": dropped, "paused": sorted(self._hub.paused)}

    async def _requests(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        limit = int(q.get("limit", "1000"))
        found = [
            r
            for r in self._faults.requests
            if q.get("venue") in (None, r["venue"]) and q.get("op") in (None, r["op"])
        ]
        return {"requests": found[-limit:]}

    async def _do_reset(self, request: web.Request) -> dict[str, bool]:
        await self._reset()
        return {"ok": True}
