"""The WeChat channel of students' watches: a notice sent to a follower of one of our
official accounts by customer message (channels/wechat/customer.py).

A watch's target is "<account name>\\n<openid>". The message is the notice's title and
Chinese text, and a short form of the event key (提醒编号): a follower who gets one
event twice (a delivery repeated after a crash) sees the same number.

    the account unknown, or it cannot send customer messages (no app secret)  give up
    WeChat did not take the message (send_text False: busy, the day's quota,
    the 48 hours since the follower last wrote, ...)                           retry later
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from channels.wechat.config import WeChatAccount
from channels.wechat.customer import CustomerMessages
from services.watches.notices import Notice
from services.watches.outbox import Outcome, Target

# Characters of the event key shown to the follower.
SHORT_KEY: Final = 8


def split_target(target: str) -> tuple[str, str] | None:
    """(account name, openid) of a watch's WeChat target; None if it is not one."""
    account, sep, openid = target.partition("\n")
    if not sep or not account or not openid or "\n" in openid:
        return None
    return account, openid


def notice_text(notice: Notice) -> str:
    return f"{notice.title}\n{notice.text}\n提醒编号 {notice.event_key[:SHORT_KEY]}"


class WeChatDeliverer:
    """The WeChat channel (see the module docstring)."""

    channel: Final = "wechat"

    def __init__(self, customer: CustomerMessages, accounts: Iterable[WeChatAccount]) -> None:
        self._customer = customer
        self._accounts = {account.name: account for account in accounts}

    async def deliver(self, target: Target, notice: Notice) -> Outcome:
        found = split_target(target.address)
        if found is None:
            return Outcome.give_up("not a WeChat target")
        name, openid = found
        account = self._accounts.get(name)
        if account is None:
            return Outcome.give_up("no such WeChat account on this server")
        if not self._customer.available(account):
            return Outcome.give_up("the WeChat account cannot send customer messages")
        if await self._customer.send_text(account, openid, notice_text(notice)):
            return Outcome.delivered()
        return Outcome.retry("WeChat did not take the customer message")
