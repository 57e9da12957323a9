"""AcademicOfficeClient against the real simulated academic office (`python -m schoolsim`,
mounted under /jwc/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from school.errors import InvalidCredentials, SchoolPageError, SchoolServerError, SessionExpired
from systems.academic.client import AcademicOfficeClient
from systems.academic.config import AcademicOfficeConfig
from systems.academic.models import AcademicSession, Timetable
from systems.academic.service import EXAMS, GRADES, TIMETABLE

STUDENT, PASSWORD = "2012052690", "052690"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


@pytest.fixture(autouse=True)
def fresh(sim: Proc) -> None:
    sim_json(sim.url, "/__sim/academic/reset", {"sessions": True})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client_for(sim: Proc, http: httpx.AsyncClient, tries: int = 5) -> AcademicOfficeClient:
    settings = AcademicOfficeConfig(
        base_url=sim.url + "/jwc/",
        connect_timeout_s=2.0,
        total_timeout_s=10.0,
        user_agent="jnufm-test",
        max_captcha_tries=tries,
    )
    return AcademicOfficeClient(settings, http)


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/academic/stats")


def truth(sim: Proc, year: int = 2012, term: int = 1, student: str = STUDENT) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/academic/students/{student}?year={year}&term={term}")


async def logged_in(sim: Proc, http: httpx.AsyncClient) -> tuple[AcademicOfficeClient, Any]:
    client = client_for(sim, http)
    session = await client.login(STUDENT, PASSWORD)
    # As a later query gets it back from storage: the student and the cookie only.
    return client, AcademicSession(session.student_id, session.cookie)


async def test_login_ok(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim, http)
    session = await client.login(STUDENT, PASSWORD)
    assert session.student_id == STUDENT and len(session.cookie) == 24
    assert session.cookie not in repr(session)
    s = stats(sim)
    assert s["logins_ok"] == 1 and s["logins_failed"] == 0 and s["captcha_fetches"] >= 1


async def test_wrong_password(sim: Proc, http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        await client_for(sim, http).login(STUDENT, "000000")
    assert caught.value.reason == "wrong_password"
    assert stats(sim)["logins_ok"] == 0


async def test_unknown_student(sim: Proc, http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        await client_for(sim, http).login("1999000000", "000000")
    assert caught.value.reason == "unknown_student"


async def test_password_set_at_the_office(sim: Proc, http: httpx.AsyncClient) -> None:
    student = "2013011234"
    sim_json(sim.url, f"/__sim/academic/students/{student}/password", {"password": "新Pass_1"})
    with pytest.raises(InvalidCredentials):
        await client_for(sim, http).login(student, student[-6:])
    session = await client_for(sim, http).login(student, "新Pass_1")
    assert session.student_id == student


async def test_wrong_captcha_is_retried(sim: Proc, http: httpx.AsyncClient) -> None:
    sim_json(sim.url, "/__sim/academic/faults", {"wrong_captcha": 2})
    session = await client_for(sim, http).login(STUDENT, PASSWORD)
    assert session.student_id == STUDENT
    s = stats(sim)
    assert s["captcha_wrong"] >= 2 and s["logins_ok"] == 1
    assert s["captcha_fetches"] >= 3


async def test_captchas_refused_every_try_is_not_a_wrong_password(
    sim: Proc, http: httpx.AsyncClient
) -> None:
    sim_json(sim.url, "/__sim/academic/faults", {"wrong_captcha": 10})
    with pytest.raises(SchoolPageError) as caught:
        await client_for(sim, http, tries=3).login(STUDENT, PASSWORD)
    assert not isinstance(caught.value, InvalidCredentials)
    s = stats(sim)
    # Each try is one captcha request (and one login POST when it was read).
    assert s["captcha_fetches"] == 3 and s["logins_ok"] == 0


async def test_timetable_matches_the_office(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    table = await client.timetable(session, 2012, 1)
    expected = truth(sim)["courses"]
    assert (table.year, table.term) == (2012, 1)
    assert [c.course_id for c in table.courses] == [c["course_id"] for c in expected]
    for course, want in zip(table.courses, expected, strict=True):
        assert course.name == want["name"] and course.class_id == want["class_id"]
        assert course.credits == Decimal(want["credits"])
        assert course.teacher == want["teacher"] and course.schedule == want["schedule"]
        got = [
            (list(m.weeks), m.weekday, list(m.periods), m.place, m.text) for m in course.meetings
        ]
        assert got == [
            (m["weeks"], m["weekday"], m["periods"], m["place"], m["text"])
            for m in want["meetings"]
        ]
        assert list(course.unparsed) == want["unparsed"]
    # The cache keeps it as JSON and reads it back the same.
    assert TIMETABLE.decode(TIMETABLE.encode(table)) == table


async def test_timetables_over_many_terms_keep_everything(
    sim: Proc, http: httpx.AsyncClient
) -> None:
    client, session = await logged_in(sim, http)
    beyond_16 = unparsed = 0
    for year in (2012, 2013, 2014):
        for term in (1, 2):
            table = await client.timetable(session, year, term)
            want = truth(sim, year, term)["courses"]
            assert sum(len(c.meetings) for c in table.courses) == sum(
                len(c["meetings"]) for c in want
            )
            beyond_16 += sum(max(m.weeks) > 16 for c in table.courses for m in c.meetings)
            unparsed += sum(len(c.unparsed) for c in table.courses)
    assert beyond_16 > 0 and unparsed > 0


async def test_timetable_before_the_student_came_is_empty(
    sim: Proc, http: httpx.AsyncClient
) -> None:
    client, session = await logged_in(sim, http)
    assert await client.timetable(session, 2010, 2) == Timetable(2010, 2, ())


async def test_exams_match_the_office(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    exams = await client.exams(session, 2012, 1)
    expected = truth(sim)["exams"]
    assert expected
    assert [
        (
            e.date.isoformat(),
            f"{e.start:%H:%M}",
            f"{e.end:%H:%M}",
            e.place,
            e.course_name,
            e.course_id,
        )
        for e in exams
    ] == [
        (x["date"], x["start"], x["end"], x["place"], x["course_name"], x["course_id"])
        for x in expected
    ]
    assert EXAMS.decode(EXAMS.encode(exams)) == exams
    assert stats(sim)["requests_by_path"].get("/jwc/Reports/KsbContent.aspx") == 1


async def test_grades_match_the_office(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    grades = await client.grades(session, 2012, 1)
    expected = truth(sim)["grades"]
    assert [(g.code, g.score_text, g.remarks) for g in grades] == [
        (x["code"], x["score"], x["remarks"]) for x in expected
    ]
    for g, x in zip(grades, expected, strict=True):
        assert g.credits == Decimal(x["credits"])
        assert g.grade_points == (Decimal(x["grade_points"]) if x["grade_points"] else None)
        assert g.score == (Decimal(x["score"]) if x["score"].isdigit() else None)
    assert GRADES.decode(GRADES.encode(grades)) == grades


async def test_words_among_grades_over_terms(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    words = []
    for year in (2012, 2013, 2014, 2015):
        for term in (1, 2):
            words += [
                g.score_text for g in await client.grades(session, year, term) if g.score is None
            ]
    assert words


async def test_stale_viewstate_is_a_server_error(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    sim_json(sim.url, "/__sim/academic/faults", {"stale_viewstate": 1})
    with pytest.raises(SchoolServerError) as caught:
        await client.timetable(session, 2012, 1)
    assert caught.value.status == 500
    assert stats(sim)["viewstate_failures"] == 1
    # The next query gets a fresh form, and works.
    assert (await client.timetable(session, 2012, 1)).courses


async def test_expired_session(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    sim_json(sim.url, "/__sim/academic/faults", {"expire_sessions": True})
    for query in (client.timetable, client.exams, client.grades):
        with pytest.raises(SessionExpired):
            await query(session, 2012, 1)
    assert stats(sim)["redirects_to_login"] == 3


async def test_a_made_up_cookie_is_an_expired_session(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim, http)
    with pytest.raises(SessionExpired):
        await client.grades(AcademicSession(STUDENT, "abcdefghijklmnopqrstuvwx"), 2012, 1)


async def test_a_term_the_office_does_not_offer(sim: Proc, http: httpx.AsyncClient) -> None:
    from school.errors import QueryRejected

    client, session = await logged_in(sim, http)
    with pytest.raises(QueryRejected):
        await client.timetable(session, 2090, 1)


async def test_the_profile_page_is_never_fetched(sim: Proc, http: httpx.AsyncClient) -> None:
    client, session = await logged_in(sim, http)
    await client.timetable(session, 2012, 1)
    await client.exams(session, 2012, 2)
    await client.grades(session, 2012, 1)
    s = stats(sim)
    assert s["profile_fetches"] == 0
    assert not any("xjgl" in path.lower() for path in s["requests_by_path"])


async def test_overloaded_office(sim: Proc, http: httpx.AsyncClient) -> None:
    sim_json(sim.url, "/__sim/academic/control", {"down": True, "down_mode": "error"})
    try:
        with pytest.raises(SchoolServerError):
            await client_for(sim, http).login(STUDENT, PASSWORD)
    finally:
        sim_json(sim.url, "/__sim/academic/control", {"down": False})
