"""Async client of the school's academic office (教务处): timetable, exams, grades."""
