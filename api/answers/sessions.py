"""Students' session and calendar tokens (/v1/sessions), watches (/v1/watches) and WeChat
bindings (/v1/wechat/bind)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.answers.common import AnswerModel, Moment, StudentId, System, optional

Feed = Literal["all", "timetable", "exams"]

# --- session tokens --------------------------------------------------------------------------


# A calendar feed token's feed.
class SessionFeed(AnswerModel):
    feed: Feed
    year: int
    term: int = Field(ge=1, le=2)


class SessionToken(AnswerModel):
    id: int = Field(ge=1)
    kind: Literal["session", "feed"]
    system: System
    label: str = Field(description="what its student called it")
    client: str | None = Field(description="the registered client it was made through")
    created_at: Moment
    last_used_at: Moment
    current: bool = Field(description="the token this request was made with")
    feed: SessionFeed | None = optional()


# What only a new token's answer says, before the token's listing (NewSession).
class OpenedToken(AnswerModel):
    token: str = Field(
        pattern="^[A-Za-z0-9_-]{43}$",
        description="256 random bits, base64url: shown this once (only its SHA-256 is stored)",
    )
    student_id: StudentId


# The token, then its listing: fields are written base class last first (OpenedToken's).
class NewSession(SessionToken, OpenedToken):
    pass


class WeChatBinding(AnswerModel):
    id: int = Field(ge=1)
    account: str = Field(description="the official account's name (`wechat.accounts`)")
    created_at: Moment


class Sessions(AnswerModel):
    student_id: StudentId
    system: System
    tokens: list[SessionToken]
    wechat: list[WeChatBinding] = Field(
        description="WeChat followers bound with a live token of this system"
    )


class Revoked(AnswerModel):
    student_id: StudentId
    system: System
    revoked: list[int]
    wechat: list[int] = Field(description="the WeChat bindings ended (no live token left)")


# --- watches ---------------------------------------------------------------------------------


class WatchMessage(AnswerModel):
    status: Literal["delivered", "pending", "given_up"]
    created_at: Moment
    attempts: int = Field(ge=0)


class Watch(AnswerModel):
    id: int = Field(ge=1)
    kind: Literal["card_transaction", "low_balance", "grade", "exam_soon", "timetable_change"]
    system: System
    param: str | None = Field(
        description="low_balance: the threshold in yuan; exam_soon: hours before"
    )
    channel: Literal["webhook", "email", "wechat"]
    target: str = Field(description="the webhook URL or the e-mail address")
    created_at: Moment
    last_polled_at: Moment | None
    failures: int = Field(ge=0, description="messages given up on")
    messages: list[WatchMessage] = Field(description="its latest messages, newest first")


class NewWatch(AnswerModel):
    student_id: StudentId
    watch: Watch
    secret: str | None = optional(
        "a webhook's signing secret, shown this once (the deliveries are signed with it)"
    )


class Watches(AnswerModel):
    student_id: StudentId
    system: System
    watches: list[Watch]


# --- WeChat ----------------------------------------------------------------------------------


# The systems a binding holds a token of.
class BoundSystems(AnswerModel):
    card: bool
    academic: bool


class WeChatBound(AnswerModel):
    student_id: StudentId
    bound: BoundSystems
    account: str = Field(description="the official account's name (`wechat.accounts`)")


MODELS = (
    NewSession,
    SessionToken,
    Sessions,
    Revoked,
    WeChatBinding,
    WeChatBound,
    Watch,
    NewWatch,
    Watches,
)
