"""The Recorder and the recording format, on real files: books round trip in order (pyarrow,
pandas, DuckDB), files rotate by day and size, the total cap deletes the oldest, a full queue
drops instead of waiting, and what a killed recorder left is salvaged."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arbitrage.clock import SystemClock
from arbitrage.config import RecordConfig
from arbitrage.domain.book import OrderBook
from arbitrage.recording.day_file import DayFile, salvage
from arbitrage.recording.format import (
    METADATA_KEY,
    SCHEMA,
    file_metadata,
    read_books,
    read_metadata,
    recording_files,
    table_of,
)
from arbitrage.recording.recorder import Recorder
from arbitrage.recording.retention import enforce_cap
from tests.waiting import wait_until

VENUES = {"upbit": "upbit", "binance": "binance"}
DEPTH = 3
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()


def make_recorder(root: Path, **settings: float) -> Recorder:
    config = RecordConfig.model_validate({"flush_rows": 50, "flush_s": 0.05, **settings})
    return Recorder(config, root, book_depth=DEPTH, mode="mock", venues=VENUES, clock=SystemClock())


def book(venue: str, symbol: str, ts: float, rng: random.Random | None = None, levels: int = 5) -> OrderBook:
    rng = rng or random.Random(int(ts * 1000))
    mid = 100.0 + rng.random()
    bids = tuple((mid - 0.1 * (i + 1), rng.random()) for i in range(levels))
    asks = tuple((mid + 0.1 * (i + 1), rng.random()) for i in range(levels))
    return OrderBook(venue, symbol, bids, asks, ts - 0.005, ts)


def key(b: OrderBook) -> tuple[object, ...]:
    return (b.venue, b.symbol, b.exchange_ts, b.received_ts, tuple(b.bids), tuple(b.asks))


def test_books_round_trip_in_received_order_with_pyarrow_pandas_and_duckdb(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    recorder = make_recorder(root)
    recorder.start()
    sent = [
        book("upbit" if i % 3 else "binance", "BTC/KRW" if i % 3 else "BTC/USDT", T0 + i * 0.01)
        for i in range(600)
    ]
    sent.append(book("upbit", "USDT/KRW", T0 + 7.0))  # an FX book: one more symbol on its venue
    for b in sent:
        recorder(b)
    recorder.close()
    assert recorder.written == len(sent) and recorder.dropped == 0

    files = recording_files(root)
    assert [f.relative_to(root).as_posix() for f in files] == [
        "binance/2026-12-03.parquet",
        "upbit/2026-12-03.parquet",
    ]
    assert not list(root.rglob("*.part*"))
    for f in files:
        schema = pq.read_schema(f)
        assert schema.remove_metadata() == SCHEMA
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
        assert read_metadata(f) == {"version": 1, "book_depth": DEPTH, "mode": "mock", "venues": VENUES}
        assert METADATA_KEY.encode() in (schema.metadata or {})

    # Top `book_depth` levels, best first; every book, merged across venues by receive time.
    expected = [
        OrderBook(b.venue, b.symbol, b.bids[:DEPTH], b.asks[:DEPTH], b.exchange_ts, b.received_ts)
        for b in sent
    ]
    got = list(read_books(root))
    assert [key(b) for b in got] == [key(b) for b in expected]
    window = list(read_books(root, start=T0 + 1.0, end=T0 + 2.0))
    assert [key(b) for b in window] == [key(b) for b in expected if T0 + 1.0 <= b.received_ts < T0 + 2.0]

    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet(root)  # the directory, as an operator would
    assert len(frame) == len(sent)
    assert set(frame["symbol"]) == {"BTC/KRW", "BTC/USDT", "USDT/KRW"}
    assert list(frame.columns) == list(SCHEMA.names)
    duckdb = pytest.importorskip("duckdb")
    counts = duckdb.sql(
        f"SELECT venue, count(*) FROM read_parquet('{root}/*/*.parquet') GROUP BY venue ORDER BY venue"
    ).fetchall()
    assert counts == [("binance", 200), ("upbit", 401)]


def test_files_rotate_at_the_utc_day_and_by_size(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    recorder = make_recorder(root, max_file_mb=0.02, flush_rows=100)
    recorder.start()
    midnight = datetime(2026, 12, 4, tzinfo=UTC).timestamp()
    rng = random.Random(1)
    sent = [book("upbit", "BTC/KRW", midnight - 30.0 + i * 0.02, rng, levels=10) for i in range(3000)]
    for b in sent:
        recorder(b)
    recorder.close()

    names = [f.name for f in recording_files(root, "upbit")]  # in the order written
    first_day = [n for n in names if n.startswith("2026-12-03")]
    second_day = [n for n in names if n.startswith("2026-12-04")]
    assert first_day and second_day, names
    # Each day's files are numbered in the order written; none past the size cap by more than a group.
    assert first_day[0] == "2026-12-03.parquet" and "2026-12-03.1.parquet" in first_day
    assert second_day[0] == "2026-12-04.parquet"
    assert all(
        pq.read_metadata(root / "upbit" / n).num_rows
        and (root / "upbit" / n).stat().st_size < 0.02 * 2**20 + 60_000
        for n in names
    )
    got = list(read_books(root))
    assert len(got) == len(sent)
    assert all(b.received_ts < midnight for b in read_books(root, end=midnight))
    assert [b.received_ts for b in got] == sorted(b.received_ts for b in sent)


def test_the_cap_deletes_the_oldest_files_across_venues_and_never_the_open_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "rec"
    sizes = {
        "upbit/2026-12-01.parquet": 400,
        "binance/2026-12-01.parquet": 300,
        "upbit/2026-12-02.parquet": 300,
        "upbit/2026-12-02.1.parquet": 300,
        "binance/2026-12-03.parquet.part": 500,  # being written: counted, never deleted
        "upbit/notes.txt": 10,  # not a recording: counted, never deleted
    }
    for name, size in sizes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    caplog.set_level(logging.WARNING, logger="arbitrage.recording")
    deleted = enforce_cap(root, 1000, keep={root / "binance/2026-12-03.parquet.part"})
    assert [p.relative_to(root).as_posix() for p in deleted] == [
        "binance/2026-12-01.parquet", "upbit/2026-12-01.parquet", "upbit/2026-12-02.parquet",
    ]  # fmt: skip
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 1000
    assert "record.max_total_mb" in caplog.text and "upbit/2026-12-01.parquet" in caplog.text


def test_a_recorder_over_its_cap_keeps_the_newest_books(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    recorder = make_recorder(root, max_file_mb=0.02, max_total_mb=0.06, flush_rows=100)
    recorder.start()
    rng = random.Random(2)
    sent = [book("upbit", "BTC/KRW", T0 + i * 0.01, rng, levels=10) for i in range(4000)]
    for b in sent:
        recorder(b)
    recorder.close()
    files = recording_files(root)
    assert "2026-12-03.parquet" not in [f.name for f in files]  # the oldest went first
    got = list(read_books(root))
    assert got and got[-1].received_ts == sent[-1].received_ts  # the newest are kept
    assert len(got) < len(sent)


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    recorder = make_recorder(tmp_path / "rec", queue_size=2)  # not started: nothing takes from the queue
    for i in range(5):
        recorder(book("upbit", "BTC/KRW", T0 + i))
    assert recorder.dropped == 3


def test_what_a_killed_writer_left_is_salvaged_up_to_its_last_row_group(tmp_path: Path) -> None:
    venue_dir = tmp_path / "rec" / "upbit"
    open_file = DayFile(venue_dir, "2026-12-03", file_metadata(DEPTH, "paper", VENUES))
    first = [book("upbit", "BTC/KRW", T0 + i) for i in range(10)]
    second = [book("upbit", "BTC/KRW", T0 + 10 + i) for i in range(5)]
    for group in (first, second):
        open_file.write(table_of(group, DEPTH))
    # As if killed: the Parquet footer was never written, so no reader can open the .part ...
    assert open_file.part_path.exists() and not recording_files(tmp_path / "rec")
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error for a file with no footer
        pq.ParquetFile(open_file.part_path)
    # ... and the next start turns its journal into a closed file of the same name.
    written = salvage(tmp_path / "rec")
    assert [p.name for p in written] == ["2026-12-03.parquet"]
    assert not list(venue_dir.glob("*.part*"))
    assert [b.received_ts for b in read_books(tmp_path / "rec")] == [b.received_ts for b in first + second]
    assert read_metadata(written[0])["mode"] == "paper"


def test_the_writer_converts_when_the_loop_says_a_tick_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer's own wake-up is pushed out of the test's reach: only a tick's end drains.
    monkeypatch.setattr("arbitrage.recording.recorder.DRAIN_GAP_S", 0.0)
    monkeypatch.setattr("arbitrage.recording.recorder.DRAIN_S", 3600.0)
    recorder = make_recorder(tmp_path / "rec", flush_rows=1)  # a row group per drain
    recorder.start()
    try:
        for i in range(5):
            recorder(book("upbit", "BTC/KRW", T0 + i))
        assert recorder.written == 0

        def ticking() -> bool:  # as a loop would: a tick's end, again and again
            recorder.between_ticks()
            return recorder.written == 5

        wait_until(ticking, 10.0, "the queued books written at a tick's end")
    finally:
        recorder.close()
    assert recorder.written == 5 and recorder.dropped == 0


def test_mock_books_go_to_the_files_as_their_levels_whether_made_or_not(tmp_path: Path) -> None:
    """The mock market's sides are lazy: the recorder takes their columns without making a tuple
    per level (venues.lazy_side.columns), and what lands in the file is what the levels read."""
    from arbitrage.bench.options import BenchOptions, bench_config
    from arbitrage.clock import FakeClock
    from arbitrage.venues.mock_market import MockMarket

    config = bench_config(BenchOptions(workdir=tmp_path, symbols=2), "NORMAL")
    market = MockMarket(config, FakeClock(start=T0))
    books = []
    for made in (False, True):
        market.step()
        for venue in config.venues:
            for symbol in market.symbols(venue):
                b = market.book(venue, symbol, 20)
                if made:
                    b.bids.levels(), b.asks.levels()  # type: ignore[attr-defined]  # read past the top
                books.append(b)
    table = table_of(books, DEPTH)
    assert table.column("bid_px").to_pylist() == [[p for p, _ in b.bids[:DEPTH]] for b in books]
    assert table.column("bid_qty").to_pylist() == [[q for _, q in b.bids[:DEPTH]] for b in books]
    assert table.column("ask_px").to_pylist() == [[p for p, _ in b.asks[:DEPTH]] for b in books]
    assert table.column("ask_qty").to_pylist() == [[q for _, q in b.asks[:DEPTH]] for b in books]
    assert all(len(levels) == DEPTH for levels in table.column("ask_px").to_pylist())
