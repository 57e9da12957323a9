"""The 2013 jnu.fm account API: same paths, parameters and JSON keys as 2013's app.py.

Parameters come from the query string (as 2013 read `request.args`) or a form POST
body; every answer carries `"version": 1.0`, and the `status` values 2013 clients
read:

    /signup          username, password          status 0 + token; 1 + token "none" (taken)
    /login           username, password          status 0 + token; 1 (no such user) or 2
                                                 (wrong password) + token "none"
    /password/reset  username, oldpassword,      status "Password reset success" /
                     password                    "Password not match"
    /auth_jwc        token, jwc_username,        status 0 bound; 1 the office refused
                     jwc_password
    /get_username    token                       status 0 + username
    /get_info        token, username             status 0 + nickname, realname, sex,
                                                 signature, avatar, background; 4 no such user
    /set_info        token + any of nickname,    status 0
                     realname, sex, signature
    /set_avatar,     POST, token, multipart      status 0 + url (/uploads/<name>.png)
    /set_background  `file`
    /sync            token                       data: the profile, user name and bound
                                                 student number (never a password)
    /class/auth,     token, jwcpw (optional),    as /class/get, /kaoshi/get
    /kaoshi/auth     year, term
    /version         -                           {"version": 1}

A token that opens nothing is 2013's "bad token": HTTP 401 with `status` 2, or
`"AuthNotPass"` on /class/auth and /kaoshi/auth. Every other error is
`{"version": 1.0, "data": null, "error": {"code", "message"}}` with its status.
README ("The 2013 account API") lists every difference from 2013.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import ClassVar

from api.answers.accounts import (
    AccountBinding,
    AccountData,
    AccountDone,
    AccountError,
    AccountLogin,
    AccountPasswordReset,
    AccountPicture,
    AccountProfile,
    AccountSignup,
    AccountSync,
    AccountUsername,
    Version2013,
)
from api.answers.common import LEGACY_VERSION, ErrorBody
from handlers.base import AppDeps, JsonHandler
from handlers.legacy import LegacyHandler, encode
from services import codes
from services.accounts import (
    PROFILE_FIELDS,
    AccountService,
    Picture,
    parse_password,
    parse_profile,
    parse_username,
)
from services.credentials import Credentials
from services.errors import BadInput, NotConfigured, PasswordChanged, TokenRefused
from systems.academic.legacy import legacy_exam_list, legacy_timetable

VERSION = LEGACY_VERSION
BAD_TOKEN = 2
# A picture's file name never changes its bytes: it may be cached for good.
PICTURE_CACHE = "public, max-age=31536000, immutable"


def service(deps: AppDeps) -> AccountService:
    if deps.accounts is None:
        raise NotConfigured("the 2013 account API is not enabled here")
    return deps.accounts


class AccountHandler(LegacyHandler):
    """A 2013 account route: answers with `version`, errors with the 2013 bad-token status."""

    # What 2013 answered for a bad token on this route.
    refused_status: ClassVar[int | str] = BAD_TOKEN

    def accounts(self) -> AccountService:
        return service(self.deps)

    def token(self) -> str:
        return self.get_argument("token", "")

    def secret(self, name: str) -> str | None:
        """A password parameter, exactly as sent (not stripped)."""
        return self.get_argument(name, None, strip=False)

    def error_body(self, exc: BaseException | None, code: str, message: str) -> str:
        refused = isinstance(exc, TokenRefused | PasswordChanged)
        body = AccountError(
            version=VERSION,
            status=self.refused_status if refused else None,
            data=None,
            error=ErrorBody(code=code, message=message),
        )
        return encode(body, self.style)


class SignupHandler(AccountHandler):
    async def get(self) -> None:
        accounts = self.accounts()
        username = parse_username(self.get_argument("username", None))
        password = parse_password(self.secret("password"))
        token = await accounts.signup(username, password, self.caller())
        status = 1 if token is None else 0
        self.write_json(AccountSignup(version=VERSION, status=status, token=token or "none"))

    post = get


class LoginHandler(AccountHandler):
    async def get(self) -> None:
        accounts = self.accounts()
        username = parse_username(self.get_argument("username", None))
        password = parse_password(self.secret("password"))
        login = await accounts.login(username, password, self.caller())
        self.write_json(
            AccountLogin(version=VERSION, status=login.status, token=login.token or "none")
        )

    post = get


class PasswordResetHandler(AccountHandler):
    async def get(self) -> None:
        accounts = self.accounts()
        username = parse_username(self.get_argument("username", None))
        old = parse_password(self.secret("oldpassword"), "oldpassword")
        new = parse_password(self.secret("password"))
        done = await accounts.reset_password(username, old, new, self.caller())
        status = "Password reset success" if done else "Password not match"
        self.write_json(AccountPasswordReset(version=VERSION, status=status))

    post = get


class AuthJwcHandler(AccountHandler):
    """Bind the academic office: status 0 once it accepted the password, 1 if it refused."""

    async def get(self) -> None:
        accounts = self.accounts()
        creds = Credentials.parse(
            self.get_argument("jwc_username", None),
            self.get_argument("jwc_password", None),
            "academic",
        )
        self.note_student(creds.student_id)
        bound = await accounts.bind_academic(self.token(), creds, self.caller())
        self.write_json(AccountBinding(version=VERSION, status=0 if bound else 1))

    post = get


class UsernameHandler(AccountHandler):
    async def get(self) -> None:
        username = await self.accounts().username(self.token())
        self.write_json(AccountUsername(version=VERSION, status=0, username=username))

    post = get


class GetInfoHandler(AccountHandler):
    """Any account's public profile (never its student number), for a logged-in user."""

    async def get(self) -> None:
        accounts = self.accounts()
        username = parse_username(self.get_argument("username", None))
        profile = await accounts.public_profile(self.token(), username)
        if profile is None:
            self.write_json(AccountProfile(version=VERSION, status=4))
            return
        self.write_json(AccountProfile(version=VERSION, status=0, **asdict(profile)))

    post = get


class SetInfoHandler(AccountHandler):
    async def get(self) -> None:
        accounts = self.accounts()
        given = {name: self.get_argument(name, None) for name in PROFILE_FIELDS}
        fields = parse_profile({name: value for name, value in given.items() if value is not None})
        await accounts.update_profile(self.token(), fields)
        self.write_json(AccountDone(version=VERSION, status=0))

    post = get


class PictureHandler(AccountHandler):
    """POST a picture as the multipart field `file` (the token in the query, as 2013)."""

    kind: ClassVar[Picture]

    @classmethod
    def body_limit(cls, deps: AppDeps) -> int | None:
        """This route's largest body (handlers/guards.py): `accounts.max_upload_bytes`."""
        return None if deps.accounts is None else deps.accounts.max_upload_bytes

    async def post(self) -> None:
        accounts = self.accounts()
        files = self.request.files.get("file")
        if not files:
            raise BadInput(
                codes.MISSING_FILE, "send the picture as the multipart form field `file`"
            )
        url = await accounts.set_picture(self.token(), self.kind, files[-1].body)
        self.write_json(AccountPicture(version=VERSION, status=0, url=url))


class AvatarHandler(PictureHandler):
    kind = "avatar"


class BackgroundHandler(PictureHandler):
    kind = "background"


class SyncHandler(AccountHandler):
    """The account's stored data, as its owner sees it: no password, ever."""

    async def get(self) -> None:
        view = await self.accounts().sync(self.token())
        data = AccountData(username=view.username, jwcid=view.student_id, **asdict(view.profile))
        self.write_json(AccountSync(version=VERSION, status=0, data=data))

    post = get


class OfficeAuthHandler(AccountHandler):
    """The bound student's timetable or exams, by the account's token; `jwcpw` optional."""

    refused_status = "AuthNotPass"

    def office_password(self) -> str | None:
        # 2013 clients may send an empty jwcpw: then the binding's password is used.
        return self.get_argument("jwcpw", "") or None


class ClassAuthHandler(OfficeAuthHandler):
    async def get(self) -> None:
        accounts = self.accounts()
        term = accounts.term(self.get_argument("year", None), self.get_argument("term", None))
        answer = await accounts.timetable(
            self.token(), self.office_password(), term, self.caller(), self.wants_fresh()
        )
        self.write_answer(answer, legacy_timetable(answer.value.courses))

    post = get


class ExamAuthHandler(OfficeAuthHandler):
    async def get(self) -> None:
        accounts = self.accounts()
        term = accounts.term(self.get_argument("year", None), self.get_argument("term", None))
        answer = await accounts.exams(
            self.token(), self.office_password(), term, self.caller(), self.wants_fresh()
        )
        self.write_answer(answer, legacy_exam_list(answer.value))

    post = get


class VersionHandler(LegacyHandler):
    async def get(self) -> None:
        self.write_json(Version2013(version=1))


class PictureFileHandler(JsonHandler):
    """A stored picture (/uploads/<name>.png), the URL /get_info and /set_avatar give."""

    async def get(self, name: str) -> None:
        data = await service(self.deps).picture(name)
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", PICTURE_CACHE)
        self.finish(data)
