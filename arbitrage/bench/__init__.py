"""The loop's benchmark (scripts/bench.py): the real bot ticked back to back on a synthetic market.

options (the market and its config) < baseline (the bare spread loop), recorder (what each tick
took, plugged into the loop's StageTimer seam and its tick hooks), machine (cold start, noise)
< figures (percentiles, printed lines, targets) < driver (runs it all). It sits above runtime,
beside cli: nothing in the bot imports it.
"""
