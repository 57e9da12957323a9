"""/v1/sessions: a student's session tokens (a token instead of a password on every call).

POST   /v1/sessions           system=card|academic, the password (Basic auth or the
                              body), an optional label: 201 {"token", ...} (shown once)
GET    /v1/sessions?system=   the student's live tokens and calendar feeds of that
                              system (the password or one of those tokens)
DELETE /v1/sessions?system=   revoke all of them; DELETE /v1/sessions/<id> one
"""

from __future__ import annotations

from typing import Any

from handlers.v1 import V1Handler, iso
from services import codes
from services.errors import BadInput, NotConfigured
from services.sessions import SYSTEMS, SessionService
from services.tokens import TokenView


def token_body(view: TokenView, current: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": view.id,
        "kind": view.kind,
        "system": view.system,
        "label": view.label,
        "client": view.client or None,
        "created_at": iso(view.created_at),
        "last_used_at": iso(view.last_used_at),
        "current": view.id == current,
    }
    if view.kind == "feed":
        body["feed"] = {"feed": view.feed, "year": view.year, "term": view.term}
    return body


class SessionsBase(V1Handler):
    def service(self) -> SessionService:
        if self.deps.sessions is None:
            raise NotConfigured("tokens are not configured here")
        return self.deps.sessions

    def system(self) -> str:
        system = self.param("system") or "card"
        if system not in SYSTEMS:
            raise BadInput(codes.INVALID_SYSTEM, "system is card or academic")
        return system


class SessionsHandler(SessionsBase):
    async def post(self) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        label = self.param("label") or ""
        token, view = await service.open(system, creds, self.caller(), label)
        self.set_header("Location", f"/v1/sessions/{view.id}")
        body = {"token": token, "student_id": creds.student_id, **token_body(view, view.id)}
        self.write_json(body, 201)

    async def get(self) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        views = await service.listed(system, creds, self.caller())
        current = self.token_id
        self.write_json(
            {
                "student_id": creds.student_id,
                "system": system,
                "tokens": [token_body(v, current) for v in views],
            }
        )

    async def delete(self) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        ended = await service.revoke(system, creds, self.caller(), None)
        self.write_json({"student_id": creds.student_id, "system": system, "revoked": ended})


class SessionHandler(SessionsBase):
    """DELETE /v1/sessions/<id>: revoke one token (the student's own, of that system)."""

    async def delete(self, token_id: str) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        ended = await service.revoke(system, creds, self.caller(), [int(token_id)])
        if not ended:
            raise BadInput(codes.UNKNOWN_TOKEN, "no such live token of this student")
        self.set_status(204)
        self.finish()
