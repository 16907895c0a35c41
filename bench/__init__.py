"""Benchmarks for mediad: `python -m bench.run --files N` (see docs/benchmarks.md)."""
