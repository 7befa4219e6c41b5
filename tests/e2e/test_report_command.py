"""`arb report` as a subprocess on ledgers written by the real bot in mock mode: its sums against
the ledger to the cent, on SQLite and PostgreSQL, the HTML page, bad input, and a running bot."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage.store.ledger import open_ledger
from tests.e2e.ops_harness import bot_env, bot_process
from tests.e2e.runner import BUSY_LOOP, METRICS_RE, merge, run_bot
from tests.waiting import wait_until

CENT = Decimal("0.01")
# Faults make one-leg fills, retries, unwinds and residuals: every table of the report has rows.
FAULTS = merge(
    BUSY_LOOP,
    {"mock": {"faults": {"one_leg_failure_rate": 0.25, "partial_fill_rate": 0.15, "reject_rate": 0.05}}},
)


@dataclass
class Report:
    code: int
    stdout: str
    stderr: str

    def table(self, title: str) -> list[list[str]]:
        """The body rows of the rich table titled `title` (each row's cells, stripped)."""
        lines = self.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
        rows: list[list[str]] = []
        for line in lines[start + 1 :]:
            if line.startswith("└"):
                break
            if line.startswith("│"):
                rows.append([cell.strip() for cell in line.strip("│").split("│")])
        return rows

    def summary(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.table("Summary")}


def arb_report(workdir: Path, *args: str) -> Report:
    proc = subprocess.run(
        [sys.executable, "-m", "arbitrage", "report", *args],
        cwd=workdir,
        env=bot_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Report(proc.returncode, proc.stdout, proc.stderr)


def money(value: Decimal) -> str:
    return f"{value.quantize(CENT):,}"


def check_against_ledger(report: Report, url: str) -> None:
    """Every sum the report prints equals the ledger's own rows, to the cent."""
    assert report.code == 0, report.stderr
    ledger = open_ledger(url)
    try:
        days, positions, hedges = ledger.daily_rows(), ledger.positions(), ledger.hedge_events()
        orders = ledger.orders()
    finally:
        ledger.close()
    assert positions and hedges, "the run should have traded and repaired legs"

    # PnL per day: the bot's daily_pnl rows, with a running total.
    expected_days, running = [], Decimal(0)
    for d in days:
        running += d["realized_pnl"]
        expected_days.append(
            [d["day"], str(d["trades"]), money(d["realized_pnl"]), money(d["fees"]), money(d["hedge_cost"]),
             money(running)]
        )  # fmt: skip
    assert report.table("PnL per day") == expected_days

    realized = sum((p.realized_pnl for p in positions), Decimal(0))
    hedge = sum((h["cost"] for h in hedges), Decimal(0))
    # The books balance: what daily_pnl says equals the positions plus the hedge results.
    assert running == realized + hedge
    summary = report.summary()
    assert summary["trades (positions)"] == str(len(positions)) == str(sum(d["trades"] for d in days))
    assert summary["realized PnL (KRW)"] == money(running)
    assert summary["positions"] == money(realized)
    assert summary["hedge results"] == money(hedge)
    assert summary["fees (KRW)"] == money(sum((p.entry_fees + p.exit_fees for p in positions), Decimal(0)))
    assert summary["ledger check"] == "balanced"
    assert summary["orders"] == str(len(orders))
    closed = [p for p in positions if p.state.value == "CLOSED"]
    wins = sum(1 for p in closed if p.realized_pnl > 0)
    assert f"{wins} of {len(closed)} closed" in report.stdout

    # Per asset and per venue pair: the positions' realized PnL, split.
    per_asset: dict[str, Decimal] = defaultdict(Decimal)
    per_pair: dict[str, Decimal] = defaultdict(Decimal)
    for p in positions:
        per_asset[p.asset] += p.realized_pnl
        per_pair[f"{p.buy_venue}->{p.sell_venue}"] += p.realized_pnl
    assert {r[0]: r[3] for r in report.table("PnL per asset")} == {k: money(v) for k, v in per_asset.items()}
    assert {r[0]: r[3] for r in report.table("PnL per venue pair")} == {
        k: money(v) for k, v in per_pair.items()
    }

    # Hedge events: every one counted, their results summed per kind and asset.
    per_kind: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for h in hedges:
        per_kind[(h["kind"], h["asset"])] += h["cost"]
    hedge_rows = report.table("Hedge events")
    assert sum(int(r[2]) for r in hedge_rows) == len(hedges)
    assert {(r[0], r[1]): r[4] for r in hedge_rows} == {k: money(v) for k, v in per_kind.items()}

    # Fees per venue in each quote currency, exact.
    fees: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for o in orders:
        if o.filled_qty or o.fee:
            fees[(o.venue, o.symbol.split("/")[1])] += o.fee
    assert {(r[0], r[1]): Decimal(r[3].replace(",", "")) for r in report.table("Fees paid per venue")} == fees


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("report_run")
    run = run_bot(workdir, "--mock", "--loops", "300", "--interval", "0", "--seed", "11", overrides=FAULTS)
    assert run.code == 0, run.stderr
    return workdir


def test_report_sums_match_the_sqlite_ledger(mock_run: Path) -> None:
    report = arb_report(mock_run, "--config", "config.yml", "--data-dir", "data")
    check_against_ledger(report, f"sqlite:///{mock_run / 'data' / 'ledger.sqlite3'}")
    assert report.stdout.startswith("arb report: sqlite data/ledger.sqlite3, whole ledger")


@pytest.mark.slow
def test_report_sums_match_the_postgres_ledger(tmp_path: Path, pg_schema_url: Callable[[], str]) -> None:
    url = pg_schema_url()
    run = run_bot(tmp_path, "--mock", "--loops", "200", "--interval", "0", "--seed", "11",
                  overrides={**FAULTS, "storage": {"url": url}})  # fmt: skip
    assert run.code == 0, run.stderr
    # From the config (storage.url), as a run finds it, and from --ledger.
    check_against_ledger(arb_report(tmp_path, "--config", "config.yml"), url)
    by_url = arb_report(tmp_path, "--ledger", url)
    check_against_ledger(by_url, url)
    assert "schema arb_test_" in by_url.stdout


def test_a_window_of_days_keeps_only_those_days(mock_run: Path) -> None:
    with sqlite3.connect(mock_run / "data" / "ledger.sqlite3") as db:
        (day,) = db.execute("select min(day) from daily_pnl").fetchone()
    same = arb_report(mock_run, "--config", "config.yml", "--since", day, "--until", day)
    assert same.code == 0, same.stderr
    assert [r[0] for r in same.table("PnL per day")] == [day]
    later = arb_report(mock_run, "--config", "config.yml", "--since", "2999-01-01")
    assert later.code == 0, later.stderr
    assert later.table("PnL per day") == [["no day booked", "", "", "", "", ""]]
    assert later.summary()["trades (positions)"] == "0"


def test_html_page_is_self_contained_with_its_charts(mock_run: Path) -> None:
    report = arb_report(mock_run, "--config", "config.yml", "--html", "out/report.html")
    assert report.code == 2 and report.stderr.strip().count("\n") == 0
    assert "directory out does not exist" in report.stderr
    report = arb_report(mock_run, "--config", "config.yml", "--html", "report.html")
    assert report.code == 0, report.stderr
    page = (mock_run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 2
    assert "Realized equity (KRW)" in page and "PnL per day (KRW)" in page
    assert "<path" in page  # the curve and the bars are drawn, not just the axes
    assert "Summary" in page and "Hedge events" in page  # the tables come along
    # Nothing to fetch: only XML namespace names may mention a URL.
    stripped = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", page)
    assert "http" not in stripped and "://" not in stripped
    for fetcher in ("<script", "<link", "<img", "<iframe", "@import"):
        assert fetcher not in page
    # References stay inside the page (clip paths, reused glyphs): url(#id), href="#id".
    assert not re.search(r"url\((?!#)", page)
    assert all(ref.startswith("#") for ref in re.findall(r'href="([^"]*)"', page))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data-dir", "nowhere"), "error: no ledger at nowhere/ledger.sqlite3"),
        (("--ledger", "missing.sqlite3"), "error: no ledger at missing.sqlite3"),
        (("--ledger", "x.db", "--since", "2026-02-30"),
         "error: --since '2026-02-30' is not a date: expected YYYY-MM-DD"),
        (("--ledger", "x.db", "--since", "2026-12-03", "--until", "2026-12-01"),
         "error: --since 2026-12-03 is after --until 2026-12-01"),
        (("--ledger", "mysql://h/db"),
         "error: ledger URL: expected sqlite:///<path> or postgresql://..., found mysql"),
    ],
)  # fmt: skip
def test_bad_input_is_one_sentence_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    report = arb_report(tmp_path, *args)
    assert (report.code, report.stderr.strip(), report.stdout) == (2, message, "")
    assert list(tmp_path.iterdir()) == []  # created nothing


def test_report_on_a_running_bot(tmp_path: Path) -> None:
    with bot_process(tmp_path, "--mock", "--interval", "0.02", "--loops", "100000", overrides=FAULTS) as bot:
        bot.wait_for(METRICS_RE.pattern)
        for _ in range(3):
            report = arb_report(tmp_path, "--config", "config.yml", "--data-dir", "data")
            assert report.code == 0, report.stderr
            assert report.summary()["ledger check"] == "balanced"
            assert bot.proc.poll() is None
        ticks = bot.stdout().count("[METRICS]")
        wait_until(  # and it keeps ticking
            lambda: bot.stdout().count("[METRICS]") >= ticks + 5,
            30,
            "five more ticks",
            proc=bot.proc,
            details=lambda: bot.stderr()[-2000:],
        )
        bot.send(signal.SIGTERM)
        run = bot.finish()
    assert run.code == 0, run.stderr
    # Read again once it stopped: the same sums as the ledger now holds.
    check_against_ledger(
        arb_report(tmp_path, "--config", "config.yml"), f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite3'}"
    )
