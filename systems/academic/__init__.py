"""The academic office (教务处): timetable, exams, grades. Its client, captcha reader,
page parsers, schedule strings, models (client.py, captcha.py, pages.py, schedule.py,
models.py), service (service.py), the 2013 and /v1/ handlers (legacy.py, v1.py), config
section (config.py) and how they are built (assembly.py). Its simulator is
schoolsim/academic/."""

from systems.academic.config import AcademicOfficeConfig
from systems.plugin import SchoolSystem, Upstream

SYSTEM = SchoolSystem(
    name="academic",
    title="the academic office",
    upstreams=(
        Upstream("academic", "the academic office", AcademicOfficeConfig, simulator_path="/jwc/"),
    ),
    takes_password=True,
    password_label="academic office password",  # noqa: S106 - a label, not a password
)
