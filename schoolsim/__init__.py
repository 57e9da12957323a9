"""The simulated school: every school system jnufm asks, in one process on one port.

card/ (the card center, at `/`, docs/card-center-protocol.md), academic/ (the
academic office, under `/jwc/`, docs/academic-office-protocol.md) and library/
(the two catalogues and the cover service, under `/opac/`, `/ilas/`, `/covers/`,
docs/library-protocol.md); overload.py is the layer each system sits behind (slow,
overloaded, flaky or down on purpose), profiles.py the calibrated settings, and
systems.py the list of systems mounted beside the card center. See README.md here.
"""
