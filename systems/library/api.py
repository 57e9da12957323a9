"""The API description of the library's routes (its part of /openapi.json), by group as
its assembly routes them (systems/library/assembly.py)."""

from __future__ import annotations

from api import errors as e
from api.contract import Answer, Operation, Param, PathParam, Route
from api.families import (
    BOOK_URL,
    CACHED,
    CAMPUS,
    FRESHNESS,
    LIBRARY_SEARCH_FAILURES,
    QUERY,
    REQUEST_ID,
    SEARCH_ABOUT,
    SEARCH_PAGE,
    legacy_search,
)
from api.schemas import BOOK, BOOK_ISBN, BOOK_PAGE_EXAMPLE, BOOK_URL_TOKEN

ROUTES: dict[str, tuple[Route, ...]] = {
    "legacy": (
        Route(
            r"/book/search/([^/]+)",
            legacy_search(),
            (
                PathParam(
                    "name",
                    "anything (2013 clients sent `engine`); the search words when there is "
                    "no `query`",
                    "engine",
                ),
            ),
            cross_origin=True,
        ),
        Route(
            r"/web/book",
            (
                Operation(
                    "get",
                    "A book's page (2013)",
                    "图书详情页（2013 接口）",
                    "2013",
                    Answer(
                        200,
                        "the book's page in HTML, from our template (everything that came from "
                        "the catalogue escaped)",
                        None,
                        "text/html",
                        CACHED,
                        BOOK_PAGE_EXAMPLE,
                    ),
                    "Only record URLs of the configured catalogues are accepted (the `url` of a "
                    "search's answer); any other URL names no book here (404) and is never "
                    "fetched. The "
                    "example is a record of the bundled simulator as the default configuration "
                    "runs it (port 8100): with another catalogue, take `url` from a search. "
                    "Errors are JSON, like every error of the API.",
                    (
                        Param(
                            "url",
                            "query",
                            "the record URL in URL-safe base64 (padding optional)",
                            BOOK_URL,
                            True,
                            BOOK_URL_TOKEN,
                        ),
                        *FRESHNESS,
                    ),
                    failures=(
                        e.BAD_REQUEST,
                        e.INVALID_URL,
                        e.UNKNOWN_BOOK,
                        e.NOT_CONFIGURED,
                        *e.SHARED_SCHOOL,
                        *e.EVERY_ROUTE,
                    ),
                    legacy_errors=True,
                ),
            ),
            cross_origin=True,
        ),
        Route(
            r"/isbn/image/([0-9Xx-]{10,17})",
            (
                Operation(
                    "get",
                    "A book's cover",
                    "图书封面",
                    "library",
                    Answer(
                        200,
                        "the cover as the cover service has it (JPEG, PNG or GIF, checked before "
                        "it is passed on), or our placeholder PNG with `X-Cover: placeholder`",
                        None,
                        "image/jpeg",
                        CACHED,
                        more_media=("image/png", "image/gif"),
                        optional_headers=("X-Cover",),
                    ),
                    "2013's cover URL (`image` of a search). Cached a week "
                    "(`school.covers.fresh_s.cover`), a missing cover too; `Cache-Control: public, "
                    "max-age=86400`. An ISBN whose check digit is wrong names no cover (404), "
                    "never asked.",
                    (REQUEST_ID,),
                    failures=(
                        e.INVALID_ISBN,
                        e.NO_SUCH_PATH,
                        e.NOT_CONFIGURED,
                        *e.SHARED_SCHOOL,
                        *e.EVERY_ROUTE,
                    ),
                ),
            ),
            (PathParam("isbn", "an ISBN-10 or ISBN-13, hyphens allowed", BOOK_ISBN),),
            cross_origin=True,
        ),
    ),
    "v1": (
        Route(
            r"/v1/library/search",
            (
                Operation(
                    "get",
                    "Search the library's catalogues",
                    "馆藏检索",
                    "library",
                    Answer(
                        200,
                        "one page of results, with links to the others",
                        "LibrarySearch",
                        headers=CACHED,
                    ),
                    SEARCH_ABOUT,
                    (
                        Param("q", "query", "the search words", QUERY, True, "数据结构"),
                        *SEARCH_PAGE,
                        Param(
                            "campus",
                            "query",
                            "`main` (the main library's catalogue, the default) or `zhuhai`",
                            CAMPUS,
                            False,
                            "main",
                        ),
                        *FRESHNESS,
                    ),
                    failures=LIBRARY_SEARCH_FAILURES,
                ),
            ),
            cross_origin=True,
        ),
        Route(
            r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})",
            (
                Operation(
                    "get",
                    "A book's record and its copies",
                    "图书详情与馆藏",
                    "library",
                    Answer(
                        200,
                        "the record: its labelled fields and its copies",
                        "LibraryRecord",
                        headers=CACHED,
                    ),
                    "No credentials: one answer serves every student from the cache "
                    "(`school.library.fresh_s.book`).",
                    FRESHNESS,
                    failures=(
                        e.BAD_REQUEST,
                        e.INVALID_BOOK_ID,
                        e.UNKNOWN_BOOK,
                        e.NO_SUCH_PATH,
                        e.NOT_CONFIGURED,
                        *e.SHARED_SCHOOL,
                        *e.EVERY_ROUTE,
                    ),
                ),
            ),
            (
                PathParam(
                    "id",
                    "a main library record number (`b1234567`), or `zh-` and a Zhuhai one "
                    "(`zh-300001`): `id` of a search's book",
                    BOOK,
                ),
            ),
            cross_origin=True,
        ),
    ),
}
