"""Tests of jnufm as processes: servers started, signalled and restarted, the
benchmark smoke test, the page in a browser."""
