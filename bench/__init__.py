"""Benchmarks: scripts that start what they measure, print figures, and stop it all."""
