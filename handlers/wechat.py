"""/wechat and /wechat/<account>: the callback URL of each WeChat official account.

GET  URL verification: the signed `echostr` echoed as text/plain.
POST a follower's message: checked (signature, replay window and nonce, decryption,
     app id: channels/wechat/endpoint.py), answered by the responder within WeChat's
     5 s (channels/wechat/responder.py), the reply sealed in safe mode.

`/wechat` serves the first account of `wechat.accounts`, `/wechat/<name>` each one.
A request that does not come intact and fresh from WeChat gets 403 (WeChat reads no
error body); an unknown account 404.
"""

from __future__ import annotations

import asyncio
import logging

from tornado.web import HTTPError

from channels.wechat.endpoint import AccountEndpoint, CallbackQuery
from channels.wechat.errors import WeChatError
from channels.wechat.service import WeChatService
from handlers.base import JsonHandler
from observability import metrics

log = logging.getLogger("jnufm.wechat")

# The query string arguments WeChat adds to the callback URL.
_QUERY = ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature")


class WeChatHandler(JsonHandler):
    # WeChat's XML messages, whatever Content-Type (if any) its servers send.
    BODY_TYPES = None

    def _service(self) -> WeChatService:
        if self.deps.wechat is None:
            raise HTTPError(404, "no WeChat account is configured here")
        return self.deps.wechat

    def _endpoint(self, name: str | None) -> AccountEndpoint:
        endpoint = self._service().endpoint(name)
        if endpoint is None:
            raise HTTPError(404, "no such WeChat account")
        return endpoint

    def _query(self) -> CallbackQuery:
        return CallbackQuery.from_arguments(
            {name: self.get_query_argument(name, "") for name in _QUERY}
        )

    def _refused(self, endpoint: AccountEndpoint, exc: WeChatError) -> HTTPError:
        metrics.wechat_refused(endpoint.account.name, exc.reason)
        return HTTPError(403, "not a request from WeChat (%s)", exc.reason)

    async def get(self, name: str | None = None) -> None:
        endpoint = self._endpoint(name)
        try:
            echo = await endpoint.verify_url(self._query())
        except WeChatError as exc:
            raise self._refused(endpoint, exc) from None
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(echo)

    async def post(self, name: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        # From the request's first byte (WeChat's 5 s run from its sending it).
        arrived = loop.time() - self.request.request_time()
        service = self._service()
        endpoint = self._endpoint(name)
        account = endpoint.account
        try:
            inbound = await endpoint.receive(self._query(), self.request.body)
        except WeChatError as exc:
            raise self._refused(endpoint, exc) from None
        reply = await service.responder.respond(account, inbound, self.caller(), arrived)
        metrics.wechat_message(account.name, reply.outcome)
        self.note_outcome(f"wechat_{reply.outcome}")
        if reply.xml is None:
            # Held past WeChat's wait: it has dropped this delivery and sends the
            # message again. Nothing is written to a follower here.
            self.close_connection()
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("")
            return
        metrics.observe_wechat_reply(account.name, loop.time() - arrived)
        self.set_header("Content-Type", "application/xml; charset=UTF-8")
        self.finish(endpoint.reply(inbound, reply.xml))
