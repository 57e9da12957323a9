"""The API contract: one description per route, from which `/openapi.json` is built.

api/contract.py   the building blocks (Param, Body, Answer, Failure, Operation, Route)
                  and `document()`, which turns the route descriptions into OpenAPI 3.1
api/schemas.py    the JSON schemas and examples of the answers
api/errors.py     every error code of README's error table, with its status, grouped by
                  what can fail (credentials' shape, the school, limits...)
api/routes.py     ROUTES: one `Route` per pattern of `handlers.routes()`, in the same
                  order; EXCLUDED: the patterns deliberately left out (static files)

Adding a route: add its pattern to `handlers/__init__.py`, then one
`Route(r"<the same pattern>", ...)` to ROUTES in api/routes.py with its operations
(the helpers there give the usual parameters, credentials and errors of each API
family), and its answer's schema to api/schemas.py. A path parameter is the
pattern's group, named and described in `Route(..., (PathParam("isbn", ...),))`;
its schema is the group's own regex. tests/test_openapi.py fails until routes and
ROUTES agree.
"""
