"""The canary's configuration (off by default, its passwords never in the config file,
read from the environment or a file: in production, a file of the server's user alone),
and what a round makes of each answer, with the services and leases stood in for."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from school.errors import SchoolPageError
from services.callers import Caller
from services.canary import Canary, CanaryTargets, read_password
from services.credentials import Credentials
from services.errors import (
    InvalidPassword,
    SchoolBusy,
    SchoolFailing,
    SchoolPageUnreadable,
    SchoolTimedOut,
    SchoolUnreachable,
)
from services.leases import LeaseStore
from settings import CanaryCardSettings, ConfigError, Settings, load_settings
from systems.card.service import CardService


def test_the_canary_is_off_by_default_with_no_test_account() -> None:
    canary = Settings().canary
    assert canary.enabled is False
    assert canary.card.student_id == ""
    assert canary.academic.student_id == ""
    assert canary.interval_s >= 600  # a slow schedule: the school's budget is small


@pytest.mark.parametrize("system", ["card", "academic"])
def test_a_password_written_in_the_config_is_refused_without_showing_it(system: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={}, overrides={f"canary.{system}.password": "052690"})
    message = str(caught.value)
    assert message.startswith(f"canary.{system}")
    assert "never written in the config file" in message
    assert "052690" not in message


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"canary.academic.year": 2026}, "canary.academic"),
        ({"canary.academic.term": 3}, "canary.academic.term"),
        ({"canary.card.student_id": "12ab"}, "canary.card.student_id"),
        ({"canary.card.password_env": "NOT A NAME"}, "canary.card.password_env"),
        ({"canary.interval_s": 0}, "canary.interval_s"),
        ({"canary.library.query": "x" * 201}, "canary.library.query"),
    ],
)
def test_bad_canary_settings_name_their_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}"):
        load_settings(None, env={}, overrides=overrides)


def test_a_password_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("canary:\n  card:\n    password_file: secrets/card\n")
    settings = load_settings(config, env={})
    assert settings.canary.card.password_file == str(tmp_path / "secrets" / "card")
    assert settings.canary.academic.password_file == ""


def test_the_password_comes_from_the_named_environment_variable() -> None:
    account = CanaryCardSettings(student_id="2012052690")
    env = {"JNUFM_CANARY_CARD_PASSWORD": "052690"}
    assert read_password(account, env, production=True) == ("052690", "")
    password, why = read_password(account, {}, production=False)
    assert password is None
    assert "JNUFM_CANARY_CARD_PASSWORD" in why


def test_the_password_file_wins_and_production_wants_it_private(tmp_path: Path) -> None:
    path = tmp_path / "card"
    path.write_text("052690\n")
    path.chmod(0o644)
    account = CanaryCardSettings(student_id="2012052690", password_file=str(path))
    env = {"JNUFM_CANARY_CARD_PASSWORD": "111111"}
    assert read_password(account, env, production=False) == ("052690", "")
    password, why = read_password(account, env, production=True)
    assert password is None
    assert "chmod 600" in why
    assert "052690" not in why
    path.chmod(0o600)
    assert read_password(account, env, production=True) == ("052690", "")


def test_a_missing_or_empty_password_file_gives_no_password(tmp_path: Path) -> None:
    missing = CanaryCardSettings(student_id="2012052690", password_file=str(tmp_path / "none"))
    assert read_password(missing, {}, production=False)[0] is None
    empty = tmp_path / "empty"
    empty.write_text("\n")
    account = CanaryCardSettings(student_id="2012052690", password_file=str(empty))
    assert read_password(account, {}, production=False) == (None, "password_file is empty")


# -- what a round makes of each answer (the services and leases stood in for) -----------


class FakeLeases:
    """Leases in a dict: taken if free, never expiring on their own."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    async def try_acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        if name in self.held:
            return False
        self.held[name] = holder
        return True

    async def release(self, name: str, holder: str, expires_in_s: float) -> None:
        if self.held.get(name) == holder:
            del self.held[name]


def page_error(message: str, kind: str | None) -> SchoolPageUnreadable:
    """The service error for an unreadable page, with its school error as the cause."""
    try:
        raise SchoolPageUnreadable("the card center answered with a page we cannot read") from (
            SchoolPageError(message, kind)
        )
    except SchoolPageUnreadable as exc:
        return exc


class FakeCard:
    """The card service's two questions: each answers, or raises what it is given."""

    def __init__(self, account: Exception | None = None, today: Exception | None = None) -> None:
        self.failures = {"account": account, "today": today}
        self.asked: list[tuple[str, str, bool]] = []

    async def _ask(self, page: str, creds: Credentials, fresh: bool) -> list[object]:
        self.asked.append((page, creds.password, fresh))
        failure = self.failures[page]
        if failure is not None:
            raise failure
        return []

    async def balance(self, creds: Credentials, caller: Caller, fresh: bool = False) -> object:
        return await self._ask("account", creds, fresh)

    async def today_transactions(
        self, creds: Credentials, caller: Caller, fresh: bool = False
    ) -> object:
        return await self._ask("today", creds, fresh)


def card_canary(
    card: FakeCard,
    leases: FakeLeases,
    env: dict[str, str] | None = None,
    waiting: bool = False,
) -> Canary:
    settings = load_settings(
        None,
        env={},
        overrides={
            "canary.enabled": True,
            "canary.card.student_id": "2012052690",
            "canary.library.query": "",
        },
    )
    targets = CanaryTargets(
        card=cast(CardService, card),
        academic=None,
        library=None,
        students_waiting=lambda system: waiting,
    )
    env = {"JNUFM_CANARY_CARD_PASSWORD": "052690"} if env is None else env
    return Canary(targets, cast(LeaseStore, leases), settings, env=env)


async def test_a_round_asks_fresh_and_reads_every_page() -> None:
    card = FakeCard()
    done = await card_canary(card, FakeLeases()).run_system("card")
    assert done is not None
    assert done.outcome == "ok"
    assert done.pages == {"account": True, "login": True, "today": True}
    assert card.asked == [("account", "052690", True), ("today", "052690", True)]


async def test_an_unreadable_page_is_its_own_and_the_round_goes_on() -> None:
    card = FakeCard(account=page_error("no balance cell", "balance"))
    done = await card_canary(card, FakeLeases()).run_system("card")
    assert done is not None
    assert done.outcome == "unreadable"
    assert done.pages == {"account": False, "login": True, "today": True}
    assert "no balance cell" in done.detail


async def test_an_unreadable_login_page_ends_the_round() -> None:
    card = FakeCard(account=page_error("no login form", "login"))
    done = await card_canary(card, FakeLeases()).run_system("card")
    assert done is not None
    assert (done.outcome, done.pages) == ("unreadable", {"login": False})
    assert [page for page, _, _ in card.asked] == ["account"]


@pytest.mark.parametrize(
    "failure",
    [
        SchoolBusy("the card center is busy; try again shortly"),
        SchoolFailing("the card center is failing; not asking it for now", 5),
        SchoolUnreachable("the card center is unavailable"),
        SchoolTimedOut("the card center did not answer in time"),
    ],
)
async def test_a_busy_failing_or_absent_school_skips_the_round(failure: Exception) -> None:
    card = FakeCard(account=failure)
    done = await card_canary(card, FakeLeases()).run_system("card")
    assert done is not None
    assert (done.outcome, done.pages) == ("skipped", {})
    assert [page for page, _, _ in card.asked] == ["account"]


async def test_the_canary_gives_way_to_students_waiting_for_the_budget() -> None:
    card = FakeCard()
    done = await card_canary(card, FakeLeases(), waiting=True).run_system("card")
    assert done is not None
    assert done.outcome == "skipped"
    assert card.asked == []


async def test_a_round_another_process_runs_is_left_to_it() -> None:
    leases = FakeLeases()
    leases.held["canary:card"] = "another:1:abc"
    card = FakeCard()
    assert await card_canary(card, leases).run_system("card") is None
    assert card.asked == []


async def test_a_refused_password_is_not_tried_again_until_it_changes() -> None:
    leases = FakeLeases()
    card = FakeCard(account=InvalidPassword("the student number or card password is wrong"))
    canary = card_canary(card, leases)
    first = await canary.run_system("card")
    assert first is not None
    assert first.outcome == "refused_login"
    del leases.held["canary:card"]  # the interval passed
    second = await canary.run_system("card")
    assert second is not None
    assert second.outcome == "refused_login"
    assert len(card.asked) == 1  # said again, not tried again
    # Another process, the same refused password: not tried either.
    del leases.held["canary:card"]
    assert (await card_canary(card, leases).run_system("card")) is not None
    assert len(card.asked) == 1
    # A new password is tried at once.
    del leases.held["canary:card"]
    changed = card_canary(card, leases, env={"JNUFM_CANARY_CARD_PASSWORD": "111111"})
    assert (await changed.run_system("card")) is not None
    assert card.asked[-1] == ("account", "111111", True)


async def test_without_a_password_the_system_is_skipped_without_a_round() -> None:
    card = FakeCard()
    assert await card_canary(card, FakeLeases(), env={}).run_system("card") is None
    assert card.asked == []
