"""/v1/watches: a student's watches, told of a change at the school (services/watches/).

POST   /v1/watches        kind, channel (webhook, email), target, param (low_balance: a
                          threshold in yuan; exam_soon: hours), with the kind's system's
                          token (Bearer) or password: 201 {"watch", "secret"} (a
                          webhook's signing secret, shown this once). With a password, a
                          session token is made for the watch (listed by /v1/sessions).
GET    /v1/watches?system=   the student's live watches of that system, each with what
                          became of its latest messages
DELETE /v1/watches/<id>?system=   end one
"""

from __future__ import annotations

from api.answers.sessions import NewWatch, Watch, Watches, WatchMessage
from handlers.v1 import V1Handler
from services import codes
from services.credentials import Credentials
from services.errors import BadInput, NotConfigured
from services.sessions import SYSTEMS
from services.tokens import SessionGrant
from services.watches.notices import KIND_SYSTEM, KINDS
from services.watches.store import WatchStore, WatchView

# The label of a session token made for a watch from a password.
WATCH_LABEL = "提醒 watches"


def watch_body(view: WatchView) -> Watch:
    return Watch(
        id=view.id,
        kind=view.kind,
        system=view.system,
        param=view.param or None,
        channel=view.channel,
        target=view.target,
        created_at=view.created_at,
        last_polled_at=view.last_polled_at,
        failures=view.failures,
        messages=[
            WatchMessage(status=m.status, created_at=m.created_at, attempts=m.attempts)
            for m in view.messages
        ],
    )


class WatchesBase(V1Handler):
    def store(self) -> WatchStore:
        if self.deps.watches is None:
            raise NotConfigured("watches are not configured here")
        return self.deps.watches

    def system(self) -> str:
        system = self.get_query_argument("system", None) or "card"
        if system not in SYSTEMS:
            raise BadInput(codes.INVALID_SYSTEM, "system is card or academic")
        return system

    async def prove(self, system: str, creds: Credentials) -> None:
        """Have a password judged by the school (a token's needs nothing more)."""
        sessions = self.deps.sessions
        if sessions is None:
            raise NotConfigured("tokens are not configured here")
        await sessions.prove(system, creds, self.caller())


class WatchesHandler(WatchesBase):
    async def post(self) -> None:
        store = self.store()
        fields = self.body_fields()
        kind = fields.get("kind", "")
        if kind not in KINDS:
            raise BadInput(codes.INVALID_WATCH_KIND, "kind is one of " + ", ".join(KINDS))
        system = KIND_SYSTEM[KINDS[KINDS.index(kind)]]
        creds = await self.credentials(system)
        client = self.caller().client
        client_name = client.name if client is not None else ""
        if self.token_id is None:
            sessions = self.deps.sessions
            if sessions is None:
                raise NotConfigured("tokens are not configured here")
            _, made = await sessions.open(system, creds, self.caller(), WATCH_LABEL)
            token_id = made.id
        else:
            token_id = self.token_id
        grant = SessionGrant(token_id, creds.student_id, system, creds.password, client_name)
        view, secret = await store.create(
            grant,
            kind,
            fields.get("channel", ""),
            fields.get("target", ""),
            fields.get("param", ""),
        )
        self.set_header("Location", f"/v1/watches/{view.id}")
        self.write_json(
            NewWatch(student_id=creds.student_id, watch=watch_body(view), secret=secret), 201
        )

    async def get(self) -> None:
        store = self.store()
        system = self.system()
        creds = await self.credentials(system)
        await self.prove(system, creds)
        views = await store.listed(creds.student_id, system)
        self.write_json(
            Watches(
                student_id=creds.student_id,
                system=system,
                watches=[watch_body(v) for v in views],
            )
        )


class WatchHandler(WatchesBase):
    """DELETE /v1/watches/<id>: end one of the student's watches (of that system)."""

    async def delete(self, watch_id: str) -> None:
        store = self.store()
        system = self.system()
        creds = await self.credentials(system)
        await self.prove(system, creds)
        await store.delete(creds.student_id, system, int(watch_id))
        self.set_status(204)
        self.finish()
