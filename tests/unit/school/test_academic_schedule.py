"""Schedule strings of the timetable (时间安排) and their place cells."""

from __future__ import annotations

import logging

import pytest

from systems.academic.models import Meeting
from systems.academic.schedule import parse_schedule, split_segments

ALL = tuple(range(1, 17))


def meetings(schedule: str, places: str = "", weeks: int = 16) -> tuple[Meeting, ...]:
    read = parse_schedule(schedule, places, weeks)
    assert read.unparsed == ()
    return read.meetings


def test_every_week_form() -> None:
    (m,) = meetings("①周二 - 3,4节", "第一教学楼101")
    assert m == Meeting(ALL, 2, (3, 4), "第一教学楼101", "周二 - 3,4节")


def test_week_range_form() -> None:
    first, second = meetings("①周二 - 3,4节②(1-14)周二 - 1,2节")
    assert first.weeks == ALL
    assert second.weeks == tuple(range(1, 15)) and second.periods == (1, 2)


def test_odd_weeks() -> None:
    (m,) = meetings("①单周周五 - 1,2节")
    assert m.weeks == (1, 3, 5, 7, 9, 11, 13, 15) and m.weekday == 5


def test_even_weeks_of_a_range() -> None:
    (m,) = meetings("①双周(4-14)周二 - 7,8,9节")
    assert m.weeks == (4, 6, 8, 10, 12, 14) and m.periods == (7, 8, 9)


def test_semicolons_split_inside_a_circled_item() -> None:
    first, second = meetings("①周一 - 7,8节;周三 - 1,2节", "①教学楼A②教学楼B")
    assert (first.weekday, first.place) == (1, "教学楼A")
    assert (second.weekday, second.place) == (3, "教学楼B")


def test_weeks_beyond_16_are_kept() -> None:
    (m,) = meetings("①(3-18)周四 - 1,2节")
    assert m.weeks == tuple(range(3, 19))


def test_no_weeks_named_means_the_term_weeks() -> None:
    (m,) = meetings("周日 - 1,2节", weeks=18)
    assert m.weeks == tuple(range(1, 19)) and m.weekday == 7


def test_fewer_places_than_segments_repeats_the_last() -> None:
    read = meetings("①周一 - 1,2节②周二 - 1,2节③周三 - 1,2节", "①A101②B202")
    assert [m.place for m in read] == ["A101", "B202", "B202"]


def test_no_place_at_all() -> None:
    (m,) = meetings("①周一 - 1,2节", "")
    assert m.place == ""


def test_full_width_and_variant_punctuation() -> None:
    (m,) = meetings("①双周（2-8）周三 - 5、6节")
    assert m.weeks == (2, 4, 6, 8) and m.periods == (5, 6)


def test_week_lists_and_period_ranges() -> None:
    (m,) = meetings("(1-4,6,8-9)周一 - 3-4节")
    assert m.weeks == (1, 2, 3, 4, 6, 8, 9) and m.periods == (3, 4)


@pytest.mark.parametrize(
    "segment",
    ["另行安排", "周二 - 待定", "(14-2)周一 - 1,2节", "周八 - 1,2节", "单周双周周一 - 1节"],
)
def test_unreadable_segments_are_kept_raw_and_logged(
    segment: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="jnufm.school"):
        read = parse_schedule(f"①周一 - 1,2节②{segment}", "①A②B", 16, "0801001")
    assert read.unparsed == (segment,)
    assert [m.text for m in read.meetings] == ["周一 - 1,2节"]
    assert segment in caplog.text and "0801001" in caplog.text


def test_places_stay_aligned_after_an_unreadable_segment() -> None:
    read = parse_schedule("①另行安排②周三 - 1,2节", "①A②B", 16)
    assert read.unparsed == ("另行安排",)
    assert read.meetings[0].place == "B"


def test_split_segments_on_circled_numbers_up_to_20() -> None:
    assert split_segments("⑪a⑳b;c；d") == ["a", "b", "c", "d"]
