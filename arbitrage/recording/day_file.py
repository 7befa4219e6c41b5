"""One venue's recording file in progress: Parquet row groups into `<name>.part`, renamed when closed.

A Parquet file is readable only once its footer is written at close, so a process killed mid-file
would leave a `.part` no reader can open. Each row group therefore also goes, zstd-compressed, to
an Arrow IPC stream beside it (`<name>.part.arrows`), which is readable up to its last whole batch
without any footer; `salvage` turns what a crash left into a closed file at the next start. A
crash thus loses at most the row group not yet written. A clean close deletes the journal.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from arbitrage.recording.format import COMPRESSION, PART_SUFFIX, SCHEMA, file_name, parse_name

log = logging.getLogger("arbitrage.recording")

JOURNAL_SUFFIX = ".arrows"  # after PART_SUFFIX: `<day>.parquet.part.arrows`
_JOURNAL_OPTIONS = pa.ipc.IpcWriteOptions(compression=COMPRESSION)


def next_part(venue_dir: Path, day: str) -> int:
    """The part number a new file of `day` gets: after every part already there, closed or not."""
    parts = [-1]
    for path in venue_dir.iterdir():
        name = path.name
        for suffix in (PART_SUFFIX + JOURNAL_SUFFIX, PART_SUFFIX):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        parsed = parse_name(name)
        if parsed is not None and parsed[0] == day:
            parts.append(parsed[1])
    return max(parts) + 1


class DayFile:
    """The open file of one venue and day; `write` appends one row group to it."""

    def __init__(self, venue_dir: Path, day: str, metadata: dict[str, str]) -> None:
        venue_dir.mkdir(parents=True, exist_ok=True)
        self.day = day
        self.path = venue_dir / file_name(day, next_part(venue_dir, day))
        self.part_path = self.path.with_name(self.path.name + PART_SUFFIX)
        self._journal_path = self.part_path.with_name(self.part_path.name + JOURNAL_SUFFIX)
        schema = SCHEMA.with_metadata(metadata)
        self._writer = pq.ParquetWriter(self.part_path, schema, compression=COMPRESSION)
        self._journal_sink = pa.OSFile(str(self._journal_path), "wb")
        self._journal = pa.ipc.new_stream(self._journal_sink, schema, options=_JOURNAL_OPTIONS)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._journal.write_table(table)
        self.rows += table.num_rows

    def size_bytes(self) -> int:
        try:
            return self.part_path.stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> Path:
        """Write the footer, publish the file under its final name, drop the journal."""
        self._writer.close()
        self._journal.close()
        self._journal_sink.close()
        os.replace(self.part_path, self.path)
        self._journal_path.unlink(missing_ok=True)
        return self.path


def salvage(root: Path) -> list[Path]:
    """Turn the files a killed recorder left under `root` into closed files; the paths written.

    A `.part` with its journal becomes the journal's whole batches, as the day's next part; a
    journal or `.part` alone (killed between creating the two) holds nothing readable.
    """
    written: list[Path] = []
    if not root.is_dir():
        return written
    for venue_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for part in sorted(venue_dir.glob("*" + PART_SUFFIX)):
            journal = part.with_name(part.name + JOURNAL_SUFFIX)
            table = read_journal(journal) if journal.exists() else None
            part.unlink()
            journal.unlink(missing_ok=True)
            if table is not None and table.num_rows:
                parsed = parse_name(part.name[: -len(PART_SUFFIX)])
                day = parsed[0] if parsed is not None else "unknown-day"
                metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
                out = DayFile(venue_dir, day, metadata)
                out.write(table)
                written.append(out.close())
                log.warning(
                    "recording %s was cut short (the recorder did not close it): kept its %d rows as %s",
                    part,
                    table.num_rows,
                    written[-1].name,
                )
        for orphan in venue_dir.glob("*" + PART_SUFFIX + JOURNAL_SUFFIX):
            orphan.unlink()
    return written


def read_journal(journal: Path) -> pa.Table | None:
    """The whole batches of a journal; a batch the crash cut in half is left out."""
    batches: list[pa.RecordBatch] = []
    schema = None
    try:
        with pa.OSFile(str(journal), "rb") as source:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
    except (pa.ArrowInvalid, OSError) as err:
        log.debug("journal %s ends in a torn batch: %s", journal, err)
    if schema is None:
        return None
    return pa.Table.from_batches(batches, schema=schema)
