"""Seeing what the server does: metrics, per-request timing, logs, readiness probes,
decision lines and the operator dashboard.

metrics.py   every Prometheus metric, with one recording function per event
timing.py    the per-request timer behind Server-Timing and the request id
logs.py      logging set-up: text or JSON lines, stderr or a reopenable file
probes.py    what /readyz and /metrics need: database check, breaker states, access rules
decisions.py lockout and limit decisions, one log line each (jnufm.decisions)
dashboard.py the operator dashboard's figures, from the same metrics /metrics shows
"""
