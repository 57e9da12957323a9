"""A password changed at the school stops working through a stored school session once
`sessions.reverify_s` has passed since the login that opened it; before, the session
still answers (the school does not end it), which is what the setting bounds."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from db.models import SchoolSession, Student
from harness.processes import Proc, jnufm_server, sim_json

REVERIFY_S = 60


def logins(sim: Proc) -> tuple[int, int]:
    """(accepted, refused) logins the simulated card center has seen."""
    stats: dict[str, Any] = sim_json(sim.url, "/__sim/stats")
    return int(stats["logins_ok"]), int(stats["logins_failed"])


def age_sessions(db_url: str, student_id: str, seconds: float) -> int:
    """Move the student's stored school sessions' login time back (as if that much time
    had passed since the login); returns how many there were."""
    sync_url = db_url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql")
    engine = create_engine(sync_url)
    try:
        with Session(engine) as db, db.begin():
            rows = db.scalars(
                select(SchoolSession)
                .join(Student, Student.id == SchoolSession.student_pk)
                .where(Student.student_id == student_id)
            ).all()
            for row in rows:
                row.created_at = row.created_at - timedelta(seconds=seconds)
            return len(rows)
    finally:
        engine.dispose()


def test_a_changed_password_stops_working_after_reverify_s(
    tmp_path: Path, sim: Proc, db_url: str
) -> None:
    student = f"2011{secrets.randbelow(10**6):06d}"
    old, new = student[-6:], f"{(int(student[-6:]) + 1) % 10**6:06d}"
    with jnufm_server(
        tmp_path,
        db_url,
        sim.url,
        processes=1,
        sessions={"reverify_s": REVERIFY_S},
        # `Cache-Control: no-cache` is honoured every time: each query goes to the school.
        cache={"fresh_min_interval_s": 0},
    ) as server:

        def balance(password: str) -> httpx.Response:
            return httpx.get(
                server.url + "/v1/card/balance",
                auth=(student, password),
                headers={"Cache-Control": "no-cache"},
                timeout=30,
            )

        first = balance(old)
        assert first.status_code == 200, first.text
        sim_json(sim.url, f"/__sim/students/{student}/password", {"password": new})

        # Within reverify_s: the stored session answers for the old password, and the
        # school is not asked to judge it (no login).
        before = logins(sim)
        still = balance(old)
        assert still.status_code == 200, still.text
        assert still.json()["source"] == "school"
        assert logins(sim) == before

        # reverify_s after the login: the session is left, a login judges the password.
        assert age_sessions(db_url, student, REVERIFY_S + 1) == 1
        refused = balance(old)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "invalid_credentials"
        assert logins(sim) == (before[0], before[1] + 1)

        accepted = balance(new)
        assert accepted.status_code == 200, accepted.text
        assert logins(sim)[0] == before[0] + 1
        assert balance(old).status_code == 401


def test_a_session_younger_than_reverify_s_is_reused(
    tmp_path: Path, sim: Proc, db_url: str
) -> None:
    """The other side of the trade: until reverify_s, a query costs no login."""
    student = f"2010{secrets.randbelow(10**6):06d}"
    with jnufm_server(
        tmp_path,
        db_url,
        sim.url,
        processes=1,
        sessions={"reverify_s": REVERIFY_S},
        cache={"fresh_min_interval_s": 0},
    ) as server:
        for _ in range(3):
            answer = httpx.get(
                server.url + "/v1/card/balance",
                auth=(student, student[-6:]),
                headers={"Cache-Control": "no-cache"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        accepted = logins(sim)[0]
        assert age_sessions(db_url, student, REVERIFY_S - 10) == 1
        again = httpx.get(
            server.url + "/v1/card/balance",
            auth=(student, student[-6:]),
            headers={"Cache-Control": "no-cache"},
            timeout=30,
        )
        assert again.status_code == 200
        assert logins(sim)[0] == accepted
        assert age_sessions(db_url, student, 11) == 1
        httpx.get(
            server.url + "/v1/card/balance",
            auth=(student, student[-6:]),
            headers={"Cache-Control": "no-cache"},
            timeout=30,
        )
        assert logins(sim)[0] == accepted + 1
