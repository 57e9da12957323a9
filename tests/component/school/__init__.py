"""Clients of the school systems against the simulator or a scripted local school."""
