"""What the tests and the benchmark harness share to run jnufm from outside: starting
the simulated school and jnufm as real processes, on ports of their own."""
