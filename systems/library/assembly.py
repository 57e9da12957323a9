"""How the library is built for one worker (three upstreams), and its routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.base import AppDeps
from services.pipeline import Pipeline
from systems.library import SYSTEM, legacy, v1
from systems.library.config import CoverServiceConfig, MainCatalogueConfig, ZhuhaiCatalogueConfig
from systems.library.covers import CoverClient
from systems.library.ilas import IlasClient
from systems.library.innopac import InnopacClient
from systems.library.service import LibraryService
from systems.parts import Built, Rule, WorkerParts


def build(parts: WorkerParts) -> Built:
    """A client per upstream (each its section as is), a pipeline per upstream (no
    credentials: no gate), the service over them."""
    http = parts.http
    pipelines: dict[str, Pipeline[None]] = {
        u.key: parts.pipeline(parts.spec(SYSTEM, u), None) for u in SYSTEM.upstreams
    }
    service = LibraryService(
        InnopacClient(parts.section("library", MainCatalogueConfig), http["library"]),
        IlasClient(parts.section("library_zhuhai", ZhuhaiCatalogueConfig), http["library_zhuhai"]),
        CoverClient(parts.section("covers", CoverServiceConfig), http["covers"]),
        pipelines,
        parts.settings,
    )
    every: tuple[Pipeline[Any], ...] = tuple(pipelines.values())
    return Built(service, every)


def routes(deps: AppDeps) -> Mapping[str, list[Rule]]:
    d = {"deps": deps}
    return {
        "legacy": [
            # No length in the pattern: it sees the percent-encoded path (a Chinese
            # character is 9 characters there); the handler bounds the decoded query
            # (400 invalid_query).
            (r"/book/search/([^/]+)", legacy.BookSearchHandler, d),
            (r"/web/book", legacy.BookPageHandler, d),
            (r"/isbn/image/([0-9Xx-]{10,17})", legacy.CoverHandler, d),
        ],
        "v1": [
            (r"/v1/library/search", v1.LibrarySearchHandler, d),
            (r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})", v1.LibraryBookHandler, d),
        ],
    }


def preload() -> None:
    """Nothing of its own to load before the fork beyond its modules."""
