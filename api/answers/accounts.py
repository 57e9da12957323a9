"""The 2013 account API's answers (handlers/legacy/accounts.py): `version` 1.0 and the
`status` values 2013 clients read, and 2013's /version."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from api.answers.common import AnswerModel, ErrorBody, LegacyVersion, StudentId, optional

LoginToken = Annotated[
    str,
    Field(
        pattern=r"^([A-Za-z0-9_-]{43}|none)$",
        description='the login token (43 characters), or "none" when there is none',
    ),
]
PictureUrl = Annotated[
    str,
    Field(
        pattern=r"^(/uploads/[A-Za-z0-9_-]{32}\.png)?$",
        description='a picture\'s URL on this server, "" for none',
    ),
]
# The one status of an answer that cannot fail otherwise (2013's enum of one value).
Done = Annotated[Literal[0], WithJsonSchema({"type": "integer", "enum": [0]})]


class AccountSignup(AnswerModel):
    version: LegacyVersion
    status: Literal[0, 1] = Field(description="0 created, 1 the name is taken")
    token: LoginToken


class AccountLogin(AnswerModel):
    version: LegacyVersion
    status: Literal[0, 1, 2] = Field(description="0 logged in, 1 no such user, 2 wrong password")
    token: LoginToken


class AccountPasswordReset(AnswerModel):
    version: LegacyVersion
    status: Literal["Password reset success", "Password not match"]


class AccountBinding(AnswerModel):
    version: LegacyVersion
    status: Literal[0, 1] = Field(description="0 bound, 1 the academic office refused the password")


class AccountDone(AnswerModel):
    version: LegacyVersion
    status: Done


class AccountUsername(AnswerModel):
    version: LegacyVersion
    status: Done
    username: str


# /get_info: an account's public profile; the profile's properties are absent when there is
# no such user (status 4).
class AccountProfile(AnswerModel):
    version: LegacyVersion
    status: Literal[0, 4] = Field(description="0 found, 4 no such user")
    nickname: str | None = optional()
    realname: str | None = optional()
    sex: str | None = optional()
    signature: str | None = optional()
    avatar: PictureUrl | None = optional()
    background: PictureUrl | None = optional()


class AccountPicture(AnswerModel):
    version: LegacyVersion
    status: Done
    url: PictureUrl


# /sync's `data`: the account's stored data as its owner sees it (never a password).
class AccountData(AnswerModel):
    username: str
    jwcid: StudentId | None = Field(description="the bound student number, or null")
    nickname: str
    realname: str
    sex: str
    signature: str
    avatar: PictureUrl
    background: PictureUrl


class AccountSync(AnswerModel):
    version: LegacyVersion
    status: Done
    data: AccountData


# An error of a 2013 account route: 2013's `version` and `data` (null) beside the error, and
# 2013's bad-token `status` where a token opened nothing.
class AccountError(AnswerModel):
    version: LegacyVersion
    status: Literal[2, "AuthNotPass"] | None = optional(
        "a token that opens nothing: 2, or AuthNotPass on /class/auth and /kaoshi/auth"
    )
    data: None
    error: ErrorBody


class Version2013(AnswerModel):
    version: Literal[1]


MODELS = (
    AccountSignup,
    AccountLogin,
    AccountPasswordReset,
    AccountBinding,
    AccountDone,
    AccountUsername,
    AccountProfile,
    AccountPicture,
    AccountSync,
    AccountError,
    Version2013,
)
