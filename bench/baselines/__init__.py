"""Baseline servers the benchmarks compare jnufm against."""
