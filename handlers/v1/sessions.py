"""/v1/sessions: a student's session tokens (a token instead of a password on every call).

POST   /v1/sessions           system=card|academic, the password (Basic auth or the
                              body), an optional label: 201 {"token", ...} (shown once)
GET    /v1/sessions?system=   the student's live tokens and calendar feeds of that
                              system (the password or one of those tokens), and the
                              WeChat followers bound with a live token of that system
DELETE /v1/sessions?system=   revoke all of them; DELETE /v1/sessions/<id> one (a WeChat
                              binding left without a live token ends with them, and
                              the watches that polled with them)
"""

from __future__ import annotations

from api.answers.sessions import (
    NewSession,
    Revoked,
    SessionFeed,
    Sessions,
    SessionToken,
    WeChatBinding,
)
from handlers.v1 import V1Handler
from services import codes
from services.errors import BadInput, NotConfigured
from services.sessions import SYSTEMS, SessionService
from services.tokens import TokenView
from services.wechat_followers import Binding


def token_fields(view: TokenView, current: int | None) -> dict[str, object]:
    """A token's listing (SessionToken's fields), this request's when `current` is its id."""
    feed = None
    if view.kind == "feed":
        feed = SessionFeed(feed=view.feed, year=view.year, term=view.term)
    return {
        "id": view.id,
        "kind": view.kind,
        "system": view.system,
        "label": view.label,
        "client": view.client or None,
        "created_at": view.created_at,
        "last_used_at": view.last_used_at,
        "current": view.id == current,
        "feed": feed,
    }


def binding_body(binding: Binding) -> WeChatBinding:
    return WeChatBinding(id=binding.id, account=binding.account, created_at=binding.created_at)


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

    async def bindings(self, student_id: str, system: str) -> list[WeChatBinding]:
        """The student's WeChat bindings with a live token of `system`."""
        followers = self.deps.followers
        if followers is None:
            return []
        return [binding_body(b) for b in await followers.listed(student_id, system)]

    async def end_watches(self, revoked: list[int]) -> None:
        """End the students' watches that polled with these revoked tokens."""
        if self.deps.watches is not None:
            await self.deps.watches.tokens_revoked(revoked)

    async def end_bindings(self, student_id: str, revoked: list[int]) -> list[int]:
        """End the WeChat bindings these revoked tokens left without a live one."""
        followers = self.deps.followers
        if followers is None:
            return []
        return await followers.tokens_revoked(student_id, revoked)


class SessionsHandler(SessionsBase):
    async def post(self) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        label = self.param("label") or ""
        token, view = await service.open(system, creds, self.caller(), label)
        self.set_header("Location", f"/v1/sessions/{view.id}")
        body = NewSession(token=token, student_id=creds.student_id, **token_fields(view, view.id))
        self.write_json(body, 201)

    async def get(self) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        views = await service.listed(system, creds, self.caller())
        current = self.token_id
        self.write_json(
            Sessions(
                student_id=creds.student_id,
                system=system,
                tokens=[SessionToken(**token_fields(v, current)) for v in views],
                wechat=await self.bindings(creds.student_id, system),
            )
        )

    async def delete(self) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        ended = await service.revoke(system, creds, self.caller(), None)
        await self.end_watches(ended)
        unbound = await self.end_bindings(creds.student_id, ended)
        self.write_json(
            Revoked(student_id=creds.student_id, system=system, revoked=ended, wechat=unbound)
        )


class SessionHandler(SessionsBase):
    """DELETE /v1/sessions/<id>: revoke one token (the student's own, of that system)."""

    async def delete(self, token_id: str) -> None:
        service = self.service()
        system = self.system()
        creds = await self.credentials(system)
        ended = await service.revoke(system, creds, self.caller(), [int(token_id)])
        if not ended:
            raise BadInput(codes.UNKNOWN_TOKEN, "no such live token of this student")
        await self.end_watches(ended)
        await self.end_bindings(creds.student_id, ended)
        self.set_status(204)
        self.finish()
