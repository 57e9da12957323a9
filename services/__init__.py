"""Services: what a query means, between the HTTP handlers and the school clients / database.

A handler parses input and calls one service method; the service logs in at
the school, fetches, records the result and returns a typed answer.
"""
