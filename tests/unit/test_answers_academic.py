"""The academic office's answer models: the published examples are answers they accept, they
write them back unchanged, and they refuse what the schema refuses."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.answers import ANSWERS
from api.answers.academic import (
    MODELS,
    Course,
    Exam,
    Exams,
    FeedToken,
    Grade,
    Grades,
    LegacyCourse,
    LegacyExam,
    LegacyExams,
    LegacyTimetable,
    Meeting,
    Timetable,
)
from api.schemas import COMPONENTS, EXAMPLES
from systems.academic.legacy import legacy_exam_list, legacy_timetable
from systems.academic.models import Course as OfficeCourse
from systems.academic.models import Exam as OfficeExam
from systems.academic.models import Grade as OfficeGrade
from systems.academic.models import Meeting as OfficeMeeting
from systems.academic.v1 import v1_grade

EXAMPLED: list[type[BaseModel]] = [
    LegacyTimetable,
    LegacyExams,
    Timetable,
    Exams,
    Grades,
    FeedToken,
]


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda m: m.__name__)
def test_each_example_validates_and_is_written_back_unchanged(model: type[BaseModel]) -> None:
    example = EXAMPLES[model.__name__]
    answer = model.model_validate(example)
    assert json.loads(answer.model_dump_json()) == example


def test_the_nested_examples_validate_with_their_own_models() -> None:
    for course in EXAMPLES["Timetable"]["courses"]:
        parsed = Course.model_validate(course)
        assert parsed.class_ == course["class"]
        for meeting in course["meetings"]:
            assert Meeting.model_validate(meeting).weekday == meeting["weekday"]
    exam = Exam.model_validate(EXAMPLES["Exams"]["exams"][0])
    assert exam.date == date(2027, 1, 12)
    assert exam.starts_at.utcoffset() is not None
    for grade in EXAMPLES["Grades"]["grades"]:
        Grade.model_validate(grade)
    for course in EXAMPLES["LegacyTimetable"]["data"].values():
        assert LegacyCourse.model_validate(course).time[0].week == "1010101010101010"
    legacy_exam = LegacyExam.model_validate(EXAMPLES["LegacyExams"]["data"][0])
    assert (legacy_exam.time_start, legacy_exam.time_end, legacy_exam.socre) == (
        "09:00",
        "11:00",
        0,
    )


def test_the_models_are_registered_and_their_components_generated() -> None:
    for model in MODELS:
        assert model in ANSWERS
    for name in ("LegacyCourse", "LegacyMeeting", "LegacyExam", "Course", "Meeting", "Exam"):
        assert COMPONENTS[name]["additionalProperties"] is False
    # The envelope, then the term, for the /v1/ answers; a feed token has no freshness.
    for name in ("Timetable", "Exams", "Grades"):
        required = COMPONENTS[name]["required"]
        assert required[:4] == ["student_id", "as_of", "source", "stale"]
        assert required[4:8] == ["year", "term", "term_name", "term_starts"]
    token = COMPONENTS["FeedToken"]
    assert token["required"][:5] == ["student_id", "year", "term", "term_name", "term_starts"]
    assert not {"as_of", "source", "stale"} & set(token["properties"])
    assert set(COMPONENTS["LegacyExam"]["properties"]) >= {"socre", "time-start", "time-end"}
    assert COMPONENTS["LegacyTimetable"]["properties"]["data"]["additionalProperties"] == {
        "$ref": "#/components/schemas/LegacyCourse"
    }


def _with(example: dict[str, Any], **changed: Any) -> dict[str, Any]:
    return {**example, **changed}


@pytest.mark.parametrize(
    ("model", "example", "changed"),
    [
        (Timetable, "Timetable", {"term": 3}),
        (Timetable, "Timetable", {"student_id": "12ab"}),
        (Timetable, "Timetable", {"term_starts": "2026-02-30"}),
        (Grades, "Grades", {"gpa": "2,80"}),
        (Exams, "Exams", {"source": "guess"}),
        (FeedToken, "FeedToken", {"feed": "grades"}),
        (FeedToken, "FeedToken", {"token": "short"}),
        (FeedToken, "FeedToken", {"as_of": "2026-11-27T08:12:03+08:00"}),
        (LegacyExams, "LegacyExams", {"version": "one"}),
    ],
)
def test_a_model_refuses_what_its_schema_refuses(
    model: type[BaseModel], example: str, changed: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(_with(EXAMPLES[example], **changed))


def test_nested_values_are_checked() -> None:
    meeting = EXAMPLES["Timetable"]["courses"][0]["meetings"][0]
    with pytest.raises(ValidationError):
        Meeting.model_validate({**meeting, "weekday": 8})
    with pytest.raises(ValidationError):
        Meeting.model_validate({**meeting, "starts": "8:00"})
    with pytest.raises(ValidationError):
        Meeting.model_validate({**meeting, "weeks": [0, 1]})
    course = EXAMPLES["LegacyTimetable"]["data"]["0801003"]
    with pytest.raises(ValidationError):
        LegacyCourse.model_validate({**course, "time": [{**course["time"][0], "week": "101"}]})
    legacy_exam = EXAMPLES["LegacyExams"]["data"][0]
    with pytest.raises(ValidationError):
        LegacyExam.model_validate({**legacy_exam, "socre": 1})


def test_moments_are_written_at_the_campus_offset() -> None:
    exam = EXAMPLES["Exams"]["exams"][0]
    utc = Exam.model_validate(
        {**exam, "starts_at": datetime(2027, 1, 12, 1, 0, tzinfo=UTC).isoformat()}
    )
    assert json.loads(utc.model_dump_json())["starts_at"] == "2027-01-12T09:00:00+08:00"


def _course(course_id: str, weeks: tuple[int, ...], weekday: int) -> OfficeCourse:
    return OfficeCourse(
        course_id=course_id,
        name="概率论与数理统计",
        class_id=course_id + "02",
        credits=Decimal("3.0"),
        category="必修",
        teacher="李秀英",
        schedule="",
        place="理工楼605",
        meetings=(OfficeMeeting(weeks, weekday, (1, 2), "理工楼605", ""),),
        unparsed=(),
        remarks="",
        stage="",
        exam_time="",
    )


def test_the_2013_timetable_joins_a_course_s_rows_and_keeps_2013_s_keys() -> None:
    answer = legacy_timetable(
        (_course("0801003", (1, 3), 5), _course("0802012", (2,), 1), _course("0801003", (17,), 2))
    )
    body = json.loads(answer.json_text())
    assert list(body) == ["data", "version"] and body["version"] == 1.0
    assert list(body["data"]) == ["0801003", "0802012"]
    first = body["data"]["0801003"]
    assert list(first)[:2] == ["class", "id"] and first["score"] == "3.0"
    # Week 17 is past 2013's 16 characters: the meeting stays, without a week shown.
    assert [t["week"] for t in first["time"]] == ["1010000000000000", "0" * 16]
    assert [t["weekday"] for t in first["time"]] == [5, 2]


def test_the_2013_exams_keep_2013_s_spelling() -> None:
    exam = OfficeExam(date(2027, 1, 12), time(9), time(11), "第三教学楼306", "大学物理", "0802012")
    body = json.loads(legacy_exam_list([exam]).json_text())
    assert body == EXAMPLES["LegacyExams"]


def test_a_grade_without_credits_is_written_with_null_credits() -> None:
    grade = OfficeGrade("0803103", "计算机网络", "专业必修", "优秀", None, None, None, "")
    body = json.loads(v1_grade(grade).json_text())
    assert (body["score"], body["score_value"], body["credits"]) == ("优秀", None, None)
