"""Tests of the school systems' page parsers and keypads, on saved pages."""
