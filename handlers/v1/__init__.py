"""The clean API under /v1/: credentials by HTTP Basic auth or a POST body, typed answers.
Here the handler base every /v1/ endpoint shares (V1Handler) and students' session
tokens (sessions.py); each school system's endpoints are in its package
(systems/<name>/v1.py).

Times are ISO 8601 with their offset, and every answer about a student says
`as_of` (when the school produced it), `source` and `stale`.
"""

from __future__ import annotations

import base64
import json
from datetime import date
from typing import Any, ClassVar, Final

from handlers.base import FORM_BODIES, JsonHandler
from services import codes
from services.credentials import MAX_FIELD_LENGTH, Credentials
from services.errors import BadInput, NotConfigured
from services.pipeline import Answer

# The error of an overlong parameter, by the parameter's name (every one `param` reads).
OVERLONG: Final = {
    "year": codes.INVALID_YEAR,
    "term": codes.INVALID_TERM,
    "start": codes.INVALID_DATE,
    "end": codes.INVALID_DATE,
    "feed": codes.INVALID_FEED,
    "system": codes.INVALID_SYSTEM,
    "label": codes.INVALID_LABEL,
}


class V1Handler(JsonHandler):
    """Credentials from `Authorization: Basic`, a student's token (`Authorization:
    Bearer`, services/tokens.py) or a JSON / form POST body."""

    # The id of the session token the credentials came from, if any.
    token_id: int | None = None
    BODY_TYPES: ClassVar[frozenset[str] | None] = FORM_BODIES | {"application/json"}

    async def credentials(self, system: str = "card") -> Credentials:
        """The credentials for a school system's password (card, academic): the request's,
        or those a session token holds (then `proven`)."""
        header = self.header("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer" and token.strip():
                creds = await self.token_credentials(token.strip(), system)
                self.note_student(creds.student_id)
                return creds
            if scheme != "basic" or not token:
                raise BadInput(
                    codes.INVALID_AUTHORIZATION,
                    "send HTTP Basic credentials or a Bearer token",
                )
            try:
                decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
            except ValueError:  # binascii.Error, UnicodeDecodeError, or a non-ASCII token
                raise BadInput(
                    codes.INVALID_AUTHORIZATION, "the Basic credentials are not valid base64"
                ) from None
            student_id, sep, password = decoded.partition(":")
            if not sep:
                raise BadInput(
                    codes.INVALID_AUTHORIZATION, "Basic credentials must be student_id:password"
                )
            creds = Credentials.parse(student_id, password, system)
        elif self.request.method == "POST" and self.request.body:
            body = self.body_fields()
            creds = Credentials.parse(body.get("student_id"), body.get("password"), system)
        else:
            raise BadInput(
                codes.MISSING_CREDENTIALS,
                "send credentials by HTTP Basic auth, a Bearer token or a POST body",
            )
        self.note_student(creds.student_id)
        return creds

    async def token_credentials(self, token: str, system: str) -> Credentials:
        """The credentials a student's session token holds. Raises TokenRefused, TokenScope."""
        tokens = self.deps.tokens
        if tokens is None:
            raise NotConfigured("tokens are not configured here")
        grant = await tokens.session(token, system)
        self.token_id = grant.token_id
        return grant.credentials()

    def body_fields(self) -> dict[str, str]:
        content_type = self.header("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                data: Any = json.loads(self.request.body or b"{}")
            except ValueError:  # also UnicodeDecodeError, and numbers too long to convert
                raise BadInput(codes.INVALID_JSON, "the body is not valid JSON") from None
            except RecursionError:
                raise BadInput(codes.INVALID_JSON, "the body is nested too deeply") from None
            if not isinstance(data, dict):
                raise BadInput(codes.INVALID_JSON, "the body must be a JSON object")
            # The fields read are held to their types first (handlers/params.py); a JSON
            # 1.0 is 1, and fields that are no parameter are ignored, whatever they hold.
            fields = {}
            for key, value in data.items():
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if isinstance(value, str | int) and not isinstance(value, bool):
                    fields[str(key)] = str(value)
            return fields
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return {k: self.get_body_argument(k) for k in self.request.body_arguments}
        if not self.request.body:
            return {}  # nothing sent: no fields (the query string may hold them)
        # Not reached by a POST: the lean layer refuses another type first (BODY_TYPES).
        raise BadInput(codes.UNSUPPORTED_MEDIA_TYPE, "send a JSON or form-encoded body")

    def param(self, name: str) -> str | None:
        """A query or body parameter (body first for POST)."""
        if self.request.method == "POST" and name in self.body_fields():
            return self.body_fields()[name]
        value = self.get_query_argument(name, None)
        if value is not None and len(value) > MAX_FIELD_LENGTH:
            raise BadInput(OVERLONG[name], f"{name} is too long")
        return value

    def about(self, creds: Credentials, answer: Answer[Any]) -> dict[str, Any]:
        """The envelope's fields of a /v1/ answer (api/answers/common.py's StudentAnswer):
        whose it is, and how fresh."""
        return {
            "student_id": creds.student_id,
            "as_of": answer.as_of,
            "source": answer.source,
            "stale": answer.stale,
        }


def parse_date(name: str, value: str | None, default: date) -> date:
    if value is None or value == "":
        return default
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_date(name)
    except ValueError:
        return _bad_date(name)


def _bad_date(name: str) -> date:
    raise BadInput(codes.INVALID_DATE, f"{name} must be a date written YYYY-MM-DD")
