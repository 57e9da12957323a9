"""The shared client toolkit every school system's client is built on.

web.py (the `Browser`: how a client talks to a school system as a browser does,
with its deadline, timeouts, metrics and one session's cookies), html.py (reading
the school's old HTML and forms), errors.py (the school error tree the pipeline
tells failures apart by) and deadline.py (a query's deadline). The systems
themselves (their clients, page parsers, models) live in systems/<name>/.
"""
