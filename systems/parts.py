"""What a system's assembly is given and gives back when a worker is built.

runtime/wiring.py makes one `WorkerParts` per worker (the settings, an HTTP client per
upstream, and how a pipeline is made on this worker's storage, limits and gate) and
hands it to every registered system's assembly (systems/<name>/assembly.py), which
builds its clients, pipelines and service from it and lists its routes. An assembly is
a module with the functions of `Assembly`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from school.config import SystemConfig
from services.pipeline import Connector, Pipeline, SystemSpec
from settings import Settings
from systems.plugin import SchoolSystem, Upstream

if TYPE_CHECKING:
    from handlers.base import AppDeps

S = TypeVar("S")
C = TypeVar("C", bound=SystemConfig)
T = TypeVar("T")

# A route as Tornado takes it: (pattern, handler class, its initialize() arguments).
Rule = tuple[str, type, dict[str, Any]]


class PipelineFactory(Protocol):
    """Puts one upstream on the shared pipeline of this worker."""

    def __call__(self, spec: SystemSpec, connector: Connector[S] | None) -> Pipeline[S]: ...


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """One worker's shared parts, from which every system builds itself."""

    settings: Settings
    http: Mapping[str, httpx.AsyncClient]  # by upstream key
    pipeline: PipelineFactory

    def section(self, upstream: str, kind: type[C]) -> C:
        """An upstream's config section as its client uses it: at the bundled
        simulator's address when the simulator is on."""
        config = self.settings.school.section(upstream, kind)
        return config.model_copy(update={"base_url": self.settings.base_url(upstream)})

    def spec(self, system: SchoolSystem, upstream: Upstream) -> SystemSpec:
        """What the pipeline knows of an upstream: names, budget, credential rule."""
        return SystemSpec(
            system=upstream.key,
            name=upstream.title,
            budget=self.settings.school.section(upstream.key, SystemConfig).budget,
            takes_password=system.takes_password,
            password_label=system.password_label,
        )


@dataclass(frozen=True, slots=True)
class Built:
    """A system as one worker serves it: its service and the pipelines it asks."""

    service: object
    pipelines: tuple[Pipeline[Any], ...]


class Assembly(Protocol):
    """The functions of a system's assembly module."""

    def build(self, parts: WorkerParts) -> Built:
        """Its clients, pipelines and service for one worker."""
        ...

    def preload(self) -> None:
        """Load, in the master before the fork, what every worker would load on its
        first request (shared pages instead of a copy per worker)."""
        ...

    def routes(self, deps: AppDeps) -> Mapping[str, list[Rule]]:
        """Its routes by group (systems.plugin.ROUTE_GROUPS), in the order they are matched."""
        ...


def service_of(services: Mapping[str, object], name: str, kind: type[T]) -> T:
    """A system's service by name, of its type: how a system's handlers find theirs in
    `AppDeps.systems`, and the wiring the ones other parts of the server depend on."""
    service = services.get(name)
    if not isinstance(service, kind):
        raise TypeError(f"the {name} system's service is not a {kind.__name__}")
    return service
