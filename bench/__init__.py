"""Benchmarks, run as scripts (`python bench/<name>.py`); shared plumbing in `bench.stack`."""
