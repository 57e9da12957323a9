"""The registry of school systems: what each declares, how settings read it, and the
older config keys that moved into each system's section."""

from __future__ import annotations

import pytest

from api.contract import Route
from api.routes import ROUTES
from handlers import routes
from handlers.base import AppDeps
from settings import SIMULATOR_PATHS, ConfigError, Settings, load_settings
from systems import SYSTEMS
from systems.academic.config import AcademicOfficeConfig
from systems.card.config import CardCenterConfig
from systems.library.config import CoverServiceConfig, ZhuhaiCatalogueConfig
from systems.plugin import ROUTE_GROUPS

UPSTREAMS = [u.key for system in SYSTEMS for u in system.upstreams]


def test_every_upstream_has_its_section_and_simulator_path() -> None:
    settings = Settings()
    assert UPSTREAMS == ["card", "academic", "library", "library_zhuhai", "covers"]
    assert list(settings.school.systems()) == UPSTREAMS
    assert list(SIMULATOR_PATHS) == UPSTREAMS
    for system in SYSTEMS:
        for upstream in system.upstreams:
            assert isinstance(settings.school.systems()[upstream.key], upstream.config)


def test_defaults_are_those_of_the_older_keys() -> None:
    settings = Settings()
    budgets = {name: s.budget for name, s in settings.school.systems().items()}
    assert budgets == {"card": 2, "academic": 2, "library": 2, "library_zhuhai": 1, "covers": 4}
    assert settings.fresh_s() == {
        "balance": 60,
        "today": 60,
        "history": 600,
        "profile": 86400,
        "timetable": 21600,
        "exams": 3600,
        "grades": 300,
        "search": 600,
        "book": 600,
        "cover": 604800,
    }


def test_older_keys_move_into_the_systems_sections() -> None:
    settings = load_settings(
        None,
        env={},
        overrides={
            "budget.card": 5,
            "budget.covers": 9,
            "budget.wait_s": 3,
            "cache.fresh_s.balance": 7,
            "cache.fresh_s.grades": 8,
            "cache.fresh_s.cover": 11,
        },
    )
    card = settings.school.section("card", CardCenterConfig)
    assert (card.budget, card.fresh_s.balance, card.fresh_s.today) == (5, 7, 60)
    assert settings.school.section("academic", AcademicOfficeConfig).fresh_s.grades == 8
    covers = settings.school.section("covers", CoverServiceConfig)
    assert (covers.budget, covers.fresh_s.cover) == (9, 11)
    assert settings.budget.wait_s == 3  # the line's own keys stay where they were


def test_new_keys_are_read_where_they_live() -> None:
    settings = load_settings(
        None,
        env={},
        overrides={"school.library_zhuhai.budget": 3, "school.card.fresh_s.history": 5},
    )
    assert settings.school.section("library_zhuhai", ZhuhaiCatalogueConfig).budget == 3
    assert settings.fresh_s()["history"] == 5


def test_a_key_set_in_both_places_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"^budget\.card and school\.card\.budget are both set"):
        load_settings(None, env={}, overrides={"budget.card": 3, "school.card.budget": 2})
    overrides = {"cache.fresh_s.search": 1, "school.library.fresh_s.search": 2}
    with pytest.raises(ConfigError, match=r"cache\.fresh_s\.search and school\.library"):
        load_settings(None, env={}, overrides=overrides)


def test_an_unknown_kind_is_still_named() -> None:
    with pytest.raises(ConfigError, match=r"cache\.fresh_s"):
        load_settings(None, env={}, overrides={"cache.fresh_s.weather": 3})


def test_a_section_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(
        TypeError, match=r"school\.card is a CardCenterConfig, not a AcademicOfficeConfig"
    ):
        Settings().school.section("card", AcademicOfficeConfig)


def test_each_system_routes_and_describes_the_same_patterns_by_group() -> None:
    deps = AppDeps(card=None, retry_after_s=1)  # type: ignore[arg-type]
    for system in SYSTEMS:
        routed = system.assembly().routes(deps)
        described = system.api().ROUTES
        assert set(routed) <= set(ROUTE_GROUPS), system.name
        assert {g: [r[0] for r in rules] for g, rules in routed.items()} == {
            g: [route.pattern for route in described[g]] for g in routed
        }, system.name
        assert set(described) == set(routed), system.name


def test_the_systems_routes_keep_their_place_among_the_others() -> None:
    patterns = [rule[0] for rule in routes(AppDeps(card=None, retry_after_s=1))]  # type: ignore[arg-type]
    assert patterns[:10] == [
        r"/card/rest",
        r"/card/today",
        r"/card/month",
        r"/card/personalinfo",
        r"/class/get",
        r"/kaoshi/get",
        r"/book/search/([^/]+)",
        r"/web/book",
        r"/isbn/image/([0-9Xx-]{10,17})",
        r"/signup",
    ]
    sessions = patterns.index(r"/v1/sessions")
    assert patterns[sessions + 2 : sessions + 4] == [
        r"/v1/calendar/tokens",
        r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics",
    ]
    described: list[Route] = list(ROUTES)
    assert [r.pattern for r in described] == [
        p for p in patterns if p in {r.pattern for r in described}
    ]
