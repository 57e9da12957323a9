"""The school systems the server stands in front of: one package each, one line each here.

Each package declares its `SchoolSystem` (systems/plugin.py) in its `__init__.py`;
settings, the worker's wiring, the routes and the API description loop over SYSTEMS,
in this order (the order of the routes and of the OpenAPI document).
"""

from systems import academic, card, library
from systems.plugin import SchoolSystem

SYSTEMS: tuple[SchoolSystem, ...] = (
    card.SYSTEM,
    academic.SYSTEM,
    library.SYSTEM,
)
