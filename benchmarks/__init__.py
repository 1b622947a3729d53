"""Runs every benchmark: python -m benchmarks [name ...]."""
