"""Tests of the simulated school card center."""
