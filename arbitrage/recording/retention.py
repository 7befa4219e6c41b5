"""The recording's total size cap: past it, the oldest closed files go first, with a warning."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from arbitrage.recording.format import parse_name

log = logging.getLogger("arbitrage.recording")


def enforce_cap(root: Path, max_bytes: int, keep: Collection[Path] = ()) -> list[Path]:
    """Delete the oldest closed files (by day, then part, across venues) until every file under
    `root`, the ones in progress included, takes at most `max_bytes`; the paths deleted.

    The files in `keep` (those being written) are counted but never deleted.
    """
    sizes: dict[Path, int] = {}
    closed: list[tuple[str, int, str, Path]] = []
    for venue_dir in (p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        for path in venue_dir.iterdir():
            try:
                sizes[path] = path.stat().st_size
            except FileNotFoundError:
                continue
            parsed = parse_name(path.name)
            if parsed is not None and path not in keep:
                closed.append((parsed[0], parsed[1], venue_dir.name, path))
    total = sum(sizes.values())
    deleted: list[Path] = []
    for _day, _part, _venue, path in sorted(closed):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= sizes[path]
        deleted.append(path)
        log.warning(
            "recording over its cap (record.max_total_mb): deleted the oldest file %s (%.1f MB)",
            path,
            sizes[path] / (1024 * 1024),
        )
    return deleted
