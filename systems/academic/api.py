"""The API description of the academic office's routes (its part of /openapi.json), by group as
its assembly routes them (systems/academic/assembly.py)."""

from __future__ import annotations

from api import errors as e
from api.contract import Answer, Operation, Param, PathParam, Route
from api.families import (
    CACHED,
    FEED,
    ICS_MEDIA,
    IF_NONE_MATCH,
    OFFICE_PASSWORD,
    REQUEST_ID,
    TERM_PARAMS,
    legacy_office,
    office,
    v1,
)
from api.schemas import TOKEN

# A new feed's token, for the links to reading and revoking it.
NEW_FEED = "$response.body#/token"

ROUTES: dict[str, tuple[Route, ...]] = {
    "legacy": (
        Route(
            r"/class/get", legacy_office("Timetable (2013)", "课表（2013 接口）", "LegacyTimetable")
        ),
        Route(
            r"/kaoshi/get", legacy_office("Exams (2013)", "考试安排（2013 接口）", "LegacyExams")
        ),
    ),
    "v1": (
        Route(
            r"/v1/timetable",
            office(
                "The term's timetable",
                "本学期课表",
                Answer(200, "the term and its courses", "Timetable", headers=CACHED),
            ),
        ),
        Route(
            r"/v1/timetable\.ics",
            office(
                "The term's timetable as an iCalendar feed",
                "课表（iCalendar 日历）",
                Answer(
                    200,
                    "RFC 5545, one event per class meeting, split at the period table's breaks",
                    None,
                    ICS_MEDIA,
                    CACHED,
                ),
                tag="calendar",
            ),
        ),
        Route(
            r"/v1/exams",
            office(
                "The term's exams",
                "本学期考试安排",
                Answer(200, "the term and its exams", "Exams", headers=CACHED),
            ),
        ),
        Route(
            r"/v1/exams\.ics",
            office(
                "The term's exams as an iCalendar feed",
                "考试安排（iCalendar 日历）",
                Answer(200, "RFC 5545, one event per exam", None, ICS_MEDIA, CACHED),
                tag="calendar",
            ),
        ),
        Route(
            r"/v1/grades",
            office(
                "The term's grades and GPA",
                "本学期成绩与绩点",
                Answer(200, "the term, its grades and the GPA", "Grades", headers=CACHED),
            ),
        ),
    ),
    "token_urls": (
        Route(
            r"/v1/calendar/tokens",
            v1(
                "calendar",
                "A feed URL for calendar apps",
                "创建日历订阅链接",
                Answer(
                    201,
                    "the new feed",
                    "FeedToken",
                    headers=("Location",),
                    links=(
                        ("read", "get_v1_calendar_token_ics", (("token", NEW_FEED),)),
                        ("revoke", "delete_v1_calendar_token_ics", (("token", NEW_FEED),)),
                    ),
                ),
                OFFICE_PASSWORD,
                (
                    *TERM_PARAMS,
                    Param("feed", "query", "all (default), timetable or exams", FEED, False, "all"),
                ),
                (*e.TERM, e.INVALID_FEED, e.NOT_CONFIGURED),
                methods=("post",),
                description="Calendar apps cannot send Basic auth: the feed's URL holds a "
                "revocable token instead (256 random bits, stored only as its SHA-256), listed and "
                "revoked with the student's tokens (`GET /v1/sessions?system=academic`), ended by "
                "a password change at the school.",
            ),
        ),
        Route(
            r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics",
            (
                Operation(
                    "get",
                    "A calendar feed, by its token",
                    "按令牌读取日历订阅",
                    "calendar",
                    Answer(200, "the feed, from stored answers only", None, ICS_MEDIA, CACHED),
                    "Served from stored answers only: a calendar app's polling never reaches "
                    "the school. With its `ETag`: `If-None-Match` gets 304 while it is unchanged; "
                    "the reader's own cache may keep it for the feed's refresh interval "
                    "(`Cache-Control: private, max-age=<school.academic.fresh_s.timetable>`).",
                    (REQUEST_ID, IF_NONE_MATCH),
                    failures=(
                        e.UNKNOWN_TOKEN,
                        *e.FEED_GONE,
                        e.NO_SUCH_PATH,
                        e.NOT_CONFIGURED,
                        e.RATE_LIMITED,
                        e.SHUTTING_DOWN,
                        *e.EVERY_ROUTE,
                        e.STORAGE_UNAVAILABLE,
                    ),
                    others=(
                        Answer(
                            304,
                            "unchanged since the `ETag` sent in `If-None-Match`: no body",
                            timing=False,
                            optional_headers=("ETag", "Cache-Control"),
                        ),
                    ),
                ),
                Operation(
                    "delete",
                    "Revoke a calendar feed",
                    "撤销日历订阅",
                    "calendar",
                    Answer(204, "revoked"),
                    params=(REQUEST_ID,),
                    failures=(
                        e.UNKNOWN_TOKEN,
                        e.NO_SUCH_PATH,
                        e.NOT_CONFIGURED,
                        e.RATE_LIMITED,
                        *e.EVERY_ROUTE,
                        e.STORAGE_UNAVAILABLE,
                    ),
                ),
            ),
            (PathParam("token", "the feed's token", TOKEN),),
            cross_origin=True,
        ),
    ),
}
