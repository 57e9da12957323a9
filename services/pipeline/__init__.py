"""The protection pipeline every school system plugs into: answer from the cache when fresh
enough, else ask the school once, never more than it can take.

The path of one request:

    credential gate (services/gate.py; systems with passwords only: others get a
    null ticket, services/pipeline/tickets.py)
    -> memory cache -> database cache (the cache stage, cache.py; storage.py's door)
    -> coalescing (coalescing.py: one fetch per question in a worker; across
       processes, one lease per student, or per question for answers every student
       shares)
    -> budget slot (a global cap per system) -> breaker (per system, per host)
    -> school: the stored session, else a login (credentials), or a plain request
       (school.py)
    -> store result + sealed session -> answer

A warm hit may take a short way (ready.py): the body written for the last answer
from the cache, kept per route, student and question, answers the next request
while the gate proves the password from the host's table alone and the memory
cache still holds the very result it was made of; anything else takes the path
above.

And when the school fails, is over budget, its breaker is open or the query's
deadline comes: the last good answer within `cache.max_stale_s`, marked stale,
else the error. What is good enough and what may stand in is decided by pure
functions (decisions.py); the stages (engine.py) do the I/O. Errors leave as
`services.errors`, translated at the edge (`Pipeline.query`).

A school system is a `Connector` (how to log in, and how to keep a session as
text) and the `Question`s its service asks; the pipeline knows nothing else of
it. `build_pipeline` (build.py) is the one place that reads the settings.
"""

from services.pipeline.build import build_pipeline
from services.pipeline.engine import Pipeline, Query
from services.pipeline.model import (
    Answer,
    Connector,
    CookieConnector,
    Question,
    Source,
    SystemSpec,
    combined,
    utc_now,
)
from services.pipeline.tickets import NullTicket, Ticket

__all__ = [
    "Answer",
    "Connector",
    "CookieConnector",
    "NullTicket",
    "Pipeline",
    "Query",
    "Question",
    "Source",
    "SystemSpec",
    "Ticket",
    "build_pipeline",
    "combined",
    "utc_now",
]
