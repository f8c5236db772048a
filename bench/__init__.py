"""Benchmarks: each compares Dari against a baseline measured in the same run."""
