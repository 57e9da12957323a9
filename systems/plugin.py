"""What a school system is to the server: one descriptor per system.

A system's package (systems/<name>/) makes one `SchoolSystem` in its `__init__.py`
and the registry (systems/__init__.py) lists it. The descriptor is light: names,
titles, the credential rule and its upstreams, each with its one config section type
(which holds its budget and cache lifetimes) and where the bundled simulator serves
it. Settings
read it to build the `school:` sections; nothing here imports a client, a service
or a handler. Those are built by the system's assembly (systems/<name>/assembly.py,
imported only when a worker is built: see systems/parts.py), so that config types
never pull in the layers above them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from school.config import SystemConfig

if TYPE_CHECKING:
    from api.contract import Route
    from systems.parts import Assembly

# Where a system's routes go in the one list of routes (handlers/__init__.py) and in the
# API description (api/routes.py): the 2013 URLs, the clean API, and URLs that carry a
# token instead of credentials (after /v1/sessions).
ROUTE_GROUPS = ("legacy", "v1", "token_urls")


class ApiDescription(Protocol):
    """A system's API description module (systems/<name>/api.py)."""

    ROUTES: Mapping[str, tuple[Route, ...]]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One school server a system asks: its section under `school:` (of type `config`),
    its budget and breaker (named `key` in metrics, leases and /readyz); its budget and
    cache lifetimes are keys of that section."""

    key: str  # "card", "library_zhuhai": the section, the budget's and breaker's name
    title: str  # in messages: "the card center"
    config: type[SystemConfig]
    # Where the bundled simulator (schoolsim) serves it, under the simulator's address.
    simulator_path: str


@dataclass(frozen=True, slots=True)
class SchoolSystem:
    """One school system: its names, credential rule, upstreams and cached answers."""

    name: str  # its package under systems/, and the first upstream's key
    title: str  # "the card center"
    upstreams: tuple[Upstream, ...]
    # Its questions need a student's password, checked by the credential gate.
    takes_password: bool = False
    # In messages: "card password".
    password_label: str = "password"  # noqa: S105 - a label, not a password

    def assembly(self) -> Assembly:
        """How its client, pipelines, service and routes are built: imported only when
        a worker is built or the routes are listed (never by settings)."""
        module = importlib.import_module(f"systems.{self.name}.assembly")
        return module  # a module satisfying Assembly

    def api(self) -> ApiDescription:
        """Its routes' API description (systems/<name>/api.py), by route group."""
        module = importlib.import_module(f"systems.{self.name}.api")
        return module  # a module satisfying ApiDescription
