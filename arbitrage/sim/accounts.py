"""Balances per API key on one simulated venue: free and locked amounts per asset, in Decimal.

A key seen for the first time gets the venue's start balances, so any dummy key works and each
test (or bot instance) can have an account of its own just by choosing a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

ZERO = Decimal(0)


class Wallet:
    def __init__(self, start: Mapping[str, Decimal]) -> None:
        self.free: dict[str, Decimal] = dict(start)
        self.locked: dict[str, Decimal] = {}

    def lock(self, asset: str, amount: Decimal) -> bool:
        """Move `amount` from free to locked; False (and nothing moved) if free is short."""
        if self.free.get(asset, ZERO) < amount:
            return False
        self.free[asset] = self.free.get(asset, ZERO) - amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount
        return True

    def unlock(self, asset: str, amount: Decimal) -> None:
        if amount <= 0:
            return
        self.locked[asset] = self.locked.get(asset, ZERO) - amount
        self.free[asset] = self.free.get(asset, ZERO) + amount

    def consume_locked(self, asset: str, amount: Decimal) -> None:
        """Locked funds that leave the account (paid for a fill)."""
        self.locked[asset] = self.locked.get(asset, ZERO) - amount

    def credit(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + amount

    def set_free(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = amount

    def assets(self) -> list[str]:
        return sorted(set(self.free) | set(self.locked))

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {
            a: {"free": str(self.free.get(a, ZERO)), "locked": str(self.locked.get(a, ZERO))}
            for a in self.assets()
        }


class Accounts:
    """Every API key's wallet on one venue."""

    def __init__(self, start: Mapping[str, Decimal]) -> None:
        self._start = dict(start)
        self._wallets: dict[str, Wallet] = {}

    def wallet(self, api_key: str) -> Wallet:
        wallet = self._wallets.get(api_key)
        if wallet is None:
            wallet = self._wallets[api_key] = Wallet(self._start)
        return wallet

    def api_keys(self) -> list[str]:
        return sorted(self._wallets)

    def reset(self) -> None:
        self._wallets.clear()
