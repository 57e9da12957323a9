"""The academic office endpoints over real HTTP against the simulated office: the 2013
shapes (/class/get, /kaoshi/get), the clean API (/v1/timetable, /v1/exams, /v1/grades),
the iCalendar feeds read back with the icalendar library, and feed tokens; on SQLite
and MySQL."""

from __future__ import annotations

import itertools
import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar

from harness.processes import Proc, sim_json

STUDENT = "2012052690"
PASSWORD = "052690"
AUTH = (STUDENT, PASSWORD)
YEAR, TERM = 2012, 1
# The first day of the simulated term the tests ask for is not in campus.terms'
# defaults: the tests name it in the settings (see the fixture below).
TERM_STARTS = date(2012, 9, 3)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def feed_language() -> str:
    """`campus.feed_language` of the test's server (a test parametrizes it to change it)."""
    return "zh"


@pytest.fixture
def settings(db_url: str, sim: Proc, feed_language: str) -> Any:
    from tests.conftest import make_settings

    terms = [
        {"year": 2012, "term": 1, "starts": TERM_STARTS.isoformat()},
        {"year": 2012, "term": 2, "starts": "2013-02-25"},
        {"year": 2026, "term": 1, "starts": "2026-09-07"},
    ]
    return make_settings(
        db_url, sim.url, **{"campus.terms": terms, "campus.feed_language": feed_language}
    )


@pytest.fixture(autouse=True)
def fresh_office(sim: Proc) -> None:
    sim_json(sim.url, "/__sim/academic/reset", {"sessions": True})


def truth(sim: Proc, student: str = STUDENT, year: int = YEAR, term: int = TERM) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/academic/students/{student}?year={year}&term={term}")


def office_stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/academic/stats")


def legacy_params(student: str = STUDENT, password: str = PASSWORD) -> dict[str, Any]:
    return {"user": student, "password": password, "year": YEAR, "term": TERM}


def week_string(weeks: list[int]) -> str:
    return "".join("1" if w in weeks else "0" for w in range(1, 17))


# The 2013 shapes ----------------------------------------------------------------------------


async def test_class_get_is_2013_shaped_field_by_field(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/class/get", params=legacy_params())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == 1.0
    assert set(body) == {"data", "version"}
    expected = truth(sim)
    courses: dict[str, list[dict[str, Any]]] = {}
    for course in expected["courses"]:
        courses.setdefault(course["course_id"], []).append(course)
    assert set(body["data"]) == set(courses)
    for course_id, rows in courses.items():
        got = body["data"][course_id]
        first = rows[0]
        assert set(got) == {
            "class",
            "id",
            "name",
            "score",
            "type",
            "teacher",
            "position",
            "more",
            "time",
        }
        assert got["id"] == course_id
        assert got["class"] == first["class_id"]
        assert got["name"] == first["name"]
        assert Decimal(got["score"]) == Decimal(first["credits"])
        assert got["type"] == first["category"]
        assert got["teacher"] == first["teacher"]
        assert got["position"] == first["place"]
        assert got["more"] == first["remarks"]
        meetings = [m for row in rows for m in row["meetings"]]
        assert len(got["time"]) == len(meetings)
        for slot, meeting in zip(got["time"], meetings, strict=True):
            assert set(slot) == {"week", "weekday", "node", "position"}
            assert len(slot["week"]) == 16 and set(slot["week"]) <= {"0", "1"}
            assert slot["week"] == week_string(meeting["weeks"])
            assert slot["weekday"] == meeting["weekday"]
            assert 1 <= slot["weekday"] <= 7
            assert slot["node"] == ",".join(str(p) for p in meeting["periods"])
            assert slot["position"] == meeting["place"]


async def test_kaoshi_get_is_2013_shaped(http_client: httpx.AsyncClient, sim: Proc) -> None:
    resp = await http_client.post("/kaoshi/get", data=legacy_params())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == 1.0
    expected = truth(sim)["exams"]
    assert len(body["data"]) == len(expected) > 0
    by_id = {e["course_id"]: e for e in expected}
    for item in body["data"]:
        assert set(item) == {
            "date",
            "time",
            "place",
            "name",
            "id",
            "socre",
            "time-start",
            "time-end",
        }
        want = by_id[item["id"]]
        assert item["socre"] == 0
        assert item["date"] == want["date"]
        assert item["time-start"] == want["start"]
        assert item["time-end"] == want["end"]
        assert item["time"] == f"{want['start']}-{want['end']}"
        assert item["place"] == want["place"]
        assert item["name"] == want["course_name"]


async def test_legacy_wrong_password_is_401_with_null_data(
    http_client: httpx.AsyncClient,
) -> None:
    resp = await http_client.get("/class/get", params=legacy_params(password="wrong-one"))
    assert resp.status_code == 401
    body = resp.json()
    assert body["data"] is None
    assert body["error"]["code"] == "invalid_credentials"
    assert "academic office password" in body["error"]["message"]
    assert "wrong-one" not in resp.text


async def test_legacy_bad_input_is_a_clear_4xx(http_client: httpx.AsyncClient) -> None:
    cases = [
        # Credentials that cannot be right: unauthorized, with their own code.
        ({"password": PASSWORD}, 401, "missing_student_id"),
        ({"user": STUDENT}, 401, "missing_password"),
        ({**legacy_params(), "password": "x" * 40}, 401, "invalid_password"),
        ({**legacy_params(), "term": "3"}, 400, "invalid_term"),
        ({**legacy_params(), "year": "twenty"}, 400, "invalid_year"),
        # A term the academic office does not offer: no such term.
        ({**legacy_params(), "year": "2099"}, 404, "unknown_term"),
    ]
    for params, status, code in cases:
        resp = await http_client.get("/class/get", params=params)
        assert resp.status_code == status, (params, resp.text)
        assert resp.json()["error"]["code"] == code


async def test_legacy_year_or_term_alone_takes_the_other_from_the_current_term(
    http_client: httpx.AsyncClient,
) -> None:
    # The current term of this module's campus.terms is 2026's term 1.
    credentials: dict[str, str | int] = {"user": STUDENT, "password": PASSWORD}
    pairs: list[tuple[dict[str, str | int], dict[str, Any]]] = [
        ({**credentials, "year": YEAR}, legacy_params()),
        ({**credentials, "term": 1}, credentials),
    ]
    for alone, same in pairs:
        resp = await http_client.get("/class/get", params=alone)
        expected = await http_client.get("/class/get", params=same)
        assert resp.status_code == expected.status_code == 200, (alone, resp.text)
        assert resp.json() == expected.json(), alone


# The clean API -----------------------------------------------------------------------------


async def test_v1_timetable_lists_weeks_and_campus_times(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/v1/timetable", params={"year": YEAR, "term": TERM}, auth=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["year"], body["term"], body["term_starts"]) == (YEAR, TERM, "2012-09-03")
    assert body["student_id"] == STUDENT
    assert body["source"] == "school" and body["stale"] is False
    expected = truth(sim)["courses"]
    assert [c["id"] for c in body["courses"]] == [c["course_id"] for c in expected]
    beyond_16 = False
    for got, want in zip(body["courses"], expected, strict=True):
        assert [m["weeks"] for m in got["meetings"]] == [m["weeks"] for m in want["meetings"]]
        assert got["unparsed"] == want["unparsed"]
        for meeting in got["meetings"]:
            beyond_16 = beyond_16 or max(meeting["weeks"]) > 16
            time.fromisoformat(meeting["starts"])
            assert meeting["starts"] < meeting["ends"]
    assert beyond_16, "the simulated term has classes past week 16, kept in /v1/"
    # The same question again is answered from the cache: the office is not asked.
    before = office_stats(sim)["requests"]
    again = await http_client.get("/v1/timetable", params={"year": YEAR, "term": TERM}, auth=AUTH)
    assert again.status_code == 200
    assert again.json()["source"] == "cache"
    assert "hit" in again.headers["Cache-Status"]
    assert office_stats(sim)["requests"] == before


async def test_v1_exams_and_grades(http_client: httpx.AsyncClient, sim: Proc) -> None:
    expected = truth(sim)
    exams = await http_client.post(
        "/v1/exams", json={"student_id": STUDENT, "password": PASSWORD, "year": YEAR, "term": TERM}
    )
    assert exams.status_code == 200, exams.text
    got = exams.json()["exams"]
    assert len(got) == len(expected["exams"])
    for exam in got:
        starts_at = datetime.fromisoformat(exam["starts_at"])
        assert starts_at.utcoffset() == timedelta(hours=8)
        assert starts_at.date().isoformat() == exam["date"]
        assert f"{starts_at:%H:%M}" == exam["starts"]
    grades = await http_client.get("/v1/grades", params={"year": YEAR, "term": TERM}, auth=AUTH)
    assert grades.status_code == 200, grades.text
    body = grades.json()
    assert [g["course_id"] for g in body["grades"]] == [g["code"] for g in expected["grades"]]
    for g, want in zip(body["grades"], expected["grades"], strict=True):
        assert g["score"] == want["score"]
    counted = [
        g for g in body["grades"] if g["grade_points"] is not None and g["credits"] is not None
    ]
    if counted:
        total_points = sum((Decimal(g["grade_points"]) for g in counted), Decimal(0))
        total_credits = sum((Decimal(g["credits"]) for g in counted), Decimal(0))
        assert Decimal(body["gpa"]) == (total_points / total_credits).quantize(Decimal("0.01"))


async def test_v1_without_credentials_is_401(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/v1/timetable")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_credentials"
    assert "Basic" in resp.headers["WWW-Authenticate"]


# Calendar feeds ----------------------------------------------------------------------------


def parse_ics(text: str) -> Calendar:
    calendar = Calendar.from_ical(text)
    assert calendar.get("version") == "2.0"
    assert calendar.get("prodid")
    return calendar


# The default period table breaks after periods 5 (lunch) and 9 (dinner).
BREAKS = (5, 9)
LUNCH = (time(12, 25), time(14, 30))


def runs_of(periods: list[int]) -> int:
    """How many events a meeting of these periods is each week: split at every break."""
    numbers = sorted(periods)
    return 1 + sum(1 for a, b in itertools.pairwise(numbers) if b != a + 1 or a in BREAKS)


async def test_timetable_ics_has_one_event_per_run_of_periods_in_campus_time(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get(
        "/v1/timetable.ics", params={"year": YEAR, "term": TERM}, auth=AUTH
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/calendar")
    calendar = parse_ics(resp.text)
    zones = [z.get("tzid") for z in calendar.walk("VTIMEZONE")]
    assert zones == ["Asia/Shanghai"]
    events = calendar.walk("VEVENT")
    expected = truth(sim)["courses"]
    wanted = sum(len(m["weeks"]) * runs_of(m["periods"]) for c in expected for m in c["meetings"])
    assert len(events) == wanted > 0
    assert str(calendar.get("x-wr-calname")) == "课表 2012-2013 学年第 1 学期"
    assert len({str(e.get("uid")) for e in events}) == len(events)
    by_name = {c["name"] for c in expected}
    for event in events:
        start = event.decoded("dtstart")
        end = event.decoded("dtend")
        assert start.tzinfo is not None and start.utcoffset() == timedelta(hours=8)
        assert start < end
        assert start.date() >= TERM_STARTS
        # No class event holds lunch: periods 5-6 are two events.
        assert not (start.time() < LUNCH[1] and end.time() > LUNCH[0]), (start, end)
        assert str(event.get("summary")) in by_name
    # A meeting in week w on weekday d falls on term start + 7(w-1) + (d-1) days.
    course = next(c for c in expected if c["meetings"])
    meeting = course["meetings"][0]
    week = meeting["weeks"][0]
    day = TERM_STARTS + timedelta(days=7 * (week - 1) + meeting["weekday"] - 1)
    assert any(
        e.decoded("dtstart").date() == day and str(e.get("summary")) == course["name"]
        for e in events
    )


async def test_exams_ics(http_client: httpx.AsyncClient, sim: Proc) -> None:
    resp = await http_client.get("/v1/exams.ics", params={"year": YEAR, "term": TERM}, auth=AUTH)
    assert resp.status_code == 200, resp.text
    parsed = parse_ics(resp.text)
    assert str(parsed.get("x-wr-calname")) == "考试 2012-2013 学年第 1 学期"
    events = parsed.walk("VEVENT")
    expected = truth(sim)["exams"]
    assert len(events) == len(expected)
    titles = {f"考试：{x['course_name']}" for x in expected}
    assert {str(e.get("summary")) for e in events} <= titles
    starts = sorted(e.decoded("dtstart") for e in events)
    want = sorted(
        datetime.combine(date.fromisoformat(x["date"]), time.fromisoformat(x["start"]), SHANGHAI)
        for x in expected
    )
    assert starts == want


async def test_feed_token_create_read_revoke(
    http_client: httpx.AsyncClient, sim: Proc, deps: Any
) -> None:
    made = await http_client.post(
        "/v1/calendar/tokens", params={"year": YEAR, "term": TERM}, auth=AUTH
    )
    assert made.status_code == 201, made.text
    body = made.json()
    token, path = body["token"], body["path"]
    assert path == f"/v1/calendar/{token}.ics"
    assert made.headers["Location"] == path
    # Read by token, without credentials; the office is not asked.
    before = office_stats(sim)["requests"]
    feed = await http_client.get(path)
    assert feed.status_code == 200, feed.text
    parsed = parse_ics(feed.text)
    assert str(parsed.get("x-wr-calname")) == "课表与考试 2012-2013 学年第 1 学期"
    summaries = {str(e.get("summary")) for e in parsed.walk("VEVENT")}
    assert any(s.startswith("考试：") for s in summaries)
    assert any(not s.startswith("考试：") for s in summaries)
    assert office_stats(sim)["requests"] == before
    # The token is stored hashed: it is nowhere in the database.
    async with deps.tokens._sessions() as session:
        from sqlalchemy import text

        rows = (await session.execute(text("SELECT token_hash, sealed FROM tokens"))).all()
    assert rows and all(token not in str(row) for row in rows)
    # Revoked: gone, and the calendar app is told why.
    gone = await http_client.delete(path)
    assert gone.status_code == 204
    after = await http_client.get(path)
    assert after.status_code == 410
    assert after.json()["error"]["code"] == "token_revoked"
    again = await http_client.delete(path)
    assert again.status_code == 404


@pytest.mark.parametrize("feed_language", ["en"])
async def test_feeds_read_in_english_when_set(http_client: httpx.AsyncClient) -> None:
    made = await http_client.post(
        "/v1/calendar/tokens", params={"year": YEAR, "term": TERM}, auth=AUTH
    )
    assert made.status_code == 201, made.text
    # The feed URL is the same as ever: the words are the server's setting.
    feed = await http_client.get(made.json()["path"])
    assert feed.status_code == 200, feed.text
    parsed = parse_ics(feed.text)
    assert str(parsed.get("x-wr-calname")) == "Classes and exams 2012-2013 term 1"
    summaries = {str(e.get("summary")) for e in parsed.walk("VEVENT")}
    assert any(s.startswith("Exam: ") for s in summaries)
    assert not any(s.startswith("考试") for s in summaries)
    details = {str(e.get("description")) for e in parsed.walk("VEVENT")}
    assert any(d.startswith("week ") for d in details)


async def test_metrics_and_access_lines_name_the_feed_route_never_its_token(
    http_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jnufm.access")
    made = await http_client.post(
        "/v1/calendar/tokens", params={"year": YEAR, "term": TERM}, auth=AUTH
    )
    assert made.status_code == 201, made.text
    token, path = made.json()["token"], made.json()["path"]
    assert (await http_client.get(path)).status_code == 200
    exposition = await http_client.get("/metrics")
    assert exposition.status_code == 200
    assert 'route="/v1/calendar/{token}.ics"' in exposition.text
    assert 'route="/v1/calendar/tokens"' in exposition.text
    assert token not in exposition.text
    lines = [r.getMessage() for r in caplog.records if r.name == "jnufm.access"]
    feed_lines = [line for line in lines if "GET /v1/calendar/" in line]
    assert feed_lines and all("route=/v1/calendar/{token}.ics " in line for line in feed_lines)
    routes = {getattr(r, "route", "") for r in caplog.records if r.name == "jnufm.access"}
    assert "/v1/calendar/{token}.ics" in routes
    assert token not in caplog.text
    assert token[:16] not in caplog.text


async def test_feed_tokens_refuse_bad_input(http_client: httpx.AsyncClient) -> None:
    bad_feed = await http_client.post(
        "/v1/calendar/tokens", params={"year": YEAR, "term": TERM, "feed": "nope"}, auth=AUTH
    )
    assert bad_feed.status_code == 400
    assert bad_feed.json()["error"]["code"] == "invalid_feed"
    unknown = await http_client.get("/v1/calendar/" + "A" * 43 + ".ics")
    assert unknown.status_code == 404
    no_auth = await http_client.post("/v1/calendar/tokens")
    assert no_auth.status_code == 401
