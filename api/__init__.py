"""The API contract: one description per route, from which `/openapi.json` is built.

api/contract.py   the building blocks (Param, Body, Answer, Operation, Route)
                  and `document()`, which turns the route descriptions into OpenAPI 3.1
api/schemas.py    the JSON schemas and examples of the answers
api/errors.py     the error codes of the catalogue (services/codes.py: each code, its
                  status and meaning) grouped by what can fail (credentials' shape, the
                  school, limits...)
api/families.py   the usual parameters, credentials, answers and errors of each API
                  family (the 2013 endpoints, /v1/, the library)
api/routes.py     ROUTES: one `Route` per pattern of `handlers.routes()`, in the same
                  order (each school system's from its systems/<name>/api.py, through
                  the registry); EXCLUDED: the patterns deliberately left out (static files)

Adding a route: add its pattern where its routes are listed (a school system's
`systems/<name>/assembly.py`, else `handlers/__init__.py`), then one
`Route(r"<the same pattern>", ...)` in the same group of that system's `api.py` (else
to ROUTES in api/routes.py) with its operations (the helpers of api/families.py give
the usual parameters, credentials and errors of each API family), and its answer's
schema to api/schemas.py. A path parameter is the
pattern's group, named and described in `Route(..., (PathParam("isbn", ...),))`;
its schema is the group's own regex. tests/component/test_openapi.py fails until routes and
ROUTES agree.
"""
