#!/usr/bin/env python3
"""Entry point of the live loop: `python scripts/run_live.py [OPTIONS]` is `arb run [OPTIONS]`."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without installing: the package sits beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arbitrage.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
