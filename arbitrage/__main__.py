"""`python -m arbitrage ...` is the `arb` command."""

from arbitrage.cli import main

main()
