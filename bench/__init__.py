"""Benchmarks for tally (`make bench`): see bench.checkout."""
