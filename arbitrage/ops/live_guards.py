"""Live guards: the static checks before live trading, and the dry-run gate after them
(see docs/ARCHITECTURE.md, Live guards).

Each failed guard is one line that starts with the guard's name, so a refusal names every one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from arbitrage.config import AppConfig

LIVE_TRADING_VAR = "LIVE_TRADING"


def check_live_guards(config: AppConfig, env: Mapping[str, str], cwd: Path) -> list[str]:
    """One readable line per failed static guard; an empty list when live trading may start."""
    return [
        *_live_trading(env),
        *_confirm_file(config, cwd),
        *_api_keys(config, env),
        *(f"SAFETY_CONFIG: {problem}" for problem in safety_problems(config)),
    ]


def _live_trading(env: Mapping[str, str]) -> list[str]:
    value = env.get(LIVE_TRADING_VAR)
    if value == "1":
        return []
    found = "it unset" if value is None else repr(value)
    return [f"LIVE_TRADING: set {LIVE_TRADING_VAR}=1 in the environment (found {found})"]


def _confirm_file(config: AppConfig, cwd: Path) -> list[str]:
    path = Path(config.live_guards.confirm_file).expanduser()
    if not path.is_absolute():
        path = cwd / path
    if path.is_file():
        return []
    return [f"CONFIRM_FILE: create {path} to confirm live trading"]


def _api_keys(config: AppConfig, env: Mapping[str, str]) -> list[str]:
    lines = []
    for name, venue in config.venues.items():
        if venue.exchange == "mock":
            continue
        missing: list[str] = []
        hints: list[str] = []
        for what, var, field_name in (
            ("key", venue.api_key_env, "api_key_env"),
            ("secret", venue.api_secret_env, "api_secret_env"),
        ):
            if var is None:
                missing.append(what)
                hints.append(f"name its variable in venues.{name}.{field_name}")
            elif not env.get(var, "").strip():
                missing.append(what)
                hints.append(f"set {var}")
        if missing:
            lines.append(f"API_KEYS: venue {name} has no API {' nor '.join(missing)} ({'; '.join(hints)})")
    return lines


def safety_problems(config: AppConfig) -> list[str]:
    """What makes the safety limits unfit to trade real money with; empty when coherent.

    The config itself refuses limits that lose money in any mode (non-finite numbers, a
    non-positive entry spread, min above max); these are the sizes only real money makes wrong.
    """
    safety, signal = config.safety, config.signal
    problems = []
    if signal.max_notional > safety.max_position_notional:
        problems.append(
            f"signal.max_notional ({signal.max_notional:g}) > "
            f"safety.max_position_notional ({safety.max_position_notional:g})"
        )
    if safety.max_position_notional > safety.max_exposure:
        problems.append(
            f"safety.max_position_notional ({safety.max_position_notional:g}) > "
            f"safety.max_exposure ({safety.max_exposure:g})"
        )
    if safety.daily_loss_limit >= safety.max_exposure:
        problems.append(
            f"safety.daily_loss_limit ({safety.daily_loss_limit:g}) >= "
            f"safety.max_exposure ({safety.max_exposure:g})"
        )
    return problems


class DryRunGate:
    """Passes after `cycles` consecutive clean dry-run ticks; once passed it stays passed.

    A tick with problems (stale data, unreadable balances) restarts the count and its reasons are
    kept, in first-seen order, for the refusal message.
    """

    def __init__(self, cycles: int) -> None:
        if cycles < 0:
            raise ValueError(f"dry-run cycles must be 0 or more, not {cycles}")
        self._cycles = cycles
        self._clean_streak = 0
        self._observed = 0
        self._passed = cycles == 0
        self._reasons: dict[str, None] = {}

    @property
    def passed(self) -> bool:
        return self._passed

    @property
    def failed_reasons(self) -> list[str]:
        return list(self._reasons)

    @property
    def observed(self) -> int:
        return self._observed

    @property
    def clean_streak(self) -> int:
        return self._clean_streak

    def observe(self, problems: list[str]) -> None:
        """Record one dry-run tick and what was wrong with it (an empty list for a clean tick)."""
        if self._passed:
            return
        self._observed += 1
        if problems:
            self._clean_streak = 0
            self._reasons.update(dict.fromkeys(problems))
            return
        self._clean_streak += 1
        if self._clean_streak >= self._cycles:
            self._passed = True
