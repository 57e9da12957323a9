"""A simulated 2013 school card center speaking docs/card-center-protocol.md."""
