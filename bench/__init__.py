"""Benchmarks, run by hand (`make bench`), never by the test suite; results in docs/benchmarks.md."""
