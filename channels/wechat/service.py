"""The WeChat channel as one worker serves it: each configured account's protocol
endpoint, and the responder that answers their followers (handlers/wechat.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from channels.wechat.endpoint import AccountEndpoint
from channels.wechat.responder import Responder


@dataclass(frozen=True, slots=True)
class WeChatService:
    # By account name, in the config's order: the first answers `/wechat`.
    endpoints: Mapping[str, AccountEndpoint]
    responder: Responder

    def endpoint(self, name: str | None) -> AccountEndpoint | None:
        """The named account's endpoint; None (no name): the first account's."""
        if name is None:
            return next(iter(self.endpoints.values()), None)
        return self.endpoints.get(name)
