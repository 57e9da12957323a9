"""The answers: one pydantic model per answer shape, the one source of what a handler
writes and of `components.schemas` in /openapi.json (api/schemas.py builds it from
ANSWERS with schema.components).

common.py    the base model, value types (money, dates, moments), the /v1/ envelope, errors
card.py      the card center's answers (2013 and /v1/)
academic.py  the academic office's: timetable, exams, grades (2013 and /v1/)
library.py   the library's: search, records, holdings (2013 and /v1/)
accounts.py  the 2013 account API's
sessions.py  session and calendar tokens, watches, WeChat bindings
ops.py       health, readiness, the dashboard, 2013's /version
schema.py    the JSON Schema generator
"""

from __future__ import annotations

from pydantic import BaseModel

from api.answers import academic, accounts, card, library, ops, sessions
from api.answers.common import Error, LegacyError

ANSWERS: tuple[type[BaseModel], ...] = (
    Error,
    LegacyError,
    *card.MODELS,
    *academic.MODELS,
    *library.MODELS,
    *accounts.MODELS,
    *sessions.MODELS,
    *ops.MODELS,
)
