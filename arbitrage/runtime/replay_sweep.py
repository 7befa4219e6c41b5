"""`arb replay --sweep key=v1,v2`: one replay per combination of the values (a grid when the option
repeats), run in parallel processes (at most one per core), compared in one table of `arb report`'s
figures."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from arbitrage.report.terminal import money, ratio
from arbitrage.runtime.replay import ReplayInputError, ReplayOptions, ReplayResult, replay

Variant = dict[str, Any]


def parse_sweep(specs: Sequence[str]) -> list[tuple[str, list[Any]]]:
    """`key=v1,v2,...` per option; each value read as YAML (0.5 a number, true a flag)."""
    axes: list[tuple[str, list[Any]]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ReplayInputError(f"--sweep {spec!r}: expected key=v1,v2,... (a dotted config key)")
        if any(key == k for k, _ in axes):
            raise ReplayInputError(f"--sweep {key} is given twice: list its values in one option")
        axes.append((key, [yaml.safe_load(v.strip()) for v in values.split(",")]))
    return axes


def variants(axes: Sequence[tuple[str, list[Any]]]) -> list[Variant]:
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]


def variant_name(variant: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items())


def sweep(base: ReplayOptions, axes: Sequence[tuple[str, list[Any]]], env: Mapping[str, str],
          workers: int | None = None) -> list[tuple[Variant, ReplayResult]]:
    """Every variant replayed into its own directory under the run's (v1, v2, ...), in parallel."""
    if base.ledger is not None:
        raise ReplayInputError("--ledger names one ledger, a sweep writes one per variant: drop --ledger")
    root = base.out
    assert root is not None
    todo = variants(axes)
    jobs = [
        replace(base, out=root / f"v{i}", overrides={**base.overrides, **variant})
        for i, variant in enumerate(todo, start=1)
    ]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    # A process per variant: a run's stop-signal handlers stay installed after it (see Shutdown),
    # holding its recording, so a worker reused for the next variant would hold two.
    with ProcessPoolExecutor(max_workers=workers, max_tasks_per_child=1) as pool:
        results = list(pool.map(replay, jobs, itertools.repeat(dict(env))))
    return list(zip(todo, results, strict=True))


def comparison_table(rows: Sequence[tuple[Variant | None, ReplayResult]], currency: str) -> Table:
    table = Table(title=f"Replay ({currency})")
    headings = ("variant", "PnL", "trades", "win rate", "fees", "max drawdown", "orders", "exit", "ledger")
    for heading in headings:
        table.add_column(heading, justify="left" if heading in ("variant", "ledger") else "right")
    for variant, result in rows:
        f = result.figures
        table.add_row(
            variant_name(variant) if variant else "(config)",
            money(Decimal(f.pnl)),
            str(f.trades),
            ratio(f.win_rate),
            money(Decimal(f.fees)),
            money(Decimal(f.max_drawdown)),
            str(f.orders),
            str(result.exit_code),
            str(Path(result.ledger)),
        )
    return table
