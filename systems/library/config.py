"""The library's config sections: its three upstreams (`school.library`, the main
catalogue; `school.library_zhuhai`, the Zhuhai campus catalogue; `school.covers`, the
cover service), each handed to its client as it is."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from school.config import Section, SystemConfig


class CatalogueFreshness(Section):
    """How old a catalogue answer may be before we ask again (seconds), both campuses."""

    search: Annotated[float, Field(ge=0)] = 600
    book: Annotated[float, Field(ge=0)] = 600


class CoverFreshness(Section):
    """How old a cover (or the news that there is none) may be (seconds)."""

    cover: Annotated[float, Field(ge=0)] = 604800


class MainCatalogueConfig(SystemConfig):
    """The main library's INNOPAC / Millennium WebPAC catalogue."""

    base_url: str = "http://127.0.0.1:8100/opac"
    max_connections: Annotated[int, Field(ge=1)] = 8
    total_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    fresh_s: CatalogueFreshness = CatalogueFreshness()


class ZhuhaiCatalogueConfig(SystemConfig):
    """The Zhuhai campus library's ILAS catalogue."""

    base_url: str = "http://127.0.0.1:8100/ilas"
    max_connections: Annotated[int, Field(ge=1)] = 4
    total_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    budget: Annotated[int, Field(ge=1, le=1000)] = 1
    # Deepest result page asked: ILAS pages by following each page's "next" form, so
    # page N costs N requests.
    max_pages: Annotated[int, Field(ge=1, le=50)] = 10
    # Result rows whose detail page is read for the ISBN and copies (each one request).
    isbn_lookups: Annotated[int, Field(ge=0, le=20)] = 0


class CoverServiceConfig(SystemConfig):
    """Where book covers come from, by ISBN."""

    base_url: str = "http://127.0.0.1:8100/covers"
    max_connections: Annotated[int, Field(ge=1)] = 8
    total_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    budget: Annotated[int, Field(ge=1, le=1000)] = 4
    max_bytes: Annotated[int, Field(ge=1024, le=8 * 1024 * 1024)] = 512 * 1024
    fresh_s: CoverFreshness = CoverFreshness()
