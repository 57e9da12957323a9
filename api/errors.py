"""The error codes an answer can carry, grouped by what fails, for the API description.

The codes themselves, their statuses and meanings are the catalogue's
(services/codes.py), every entry of which is `api.errors.<NAME>` too; this module
only groups them (an operation lists the groups that apply to it: the document
then has one response per status, whose schema names exactly the codes of that
status) and rewords an entry where a route answers it for a reason of its own.
"""

from __future__ import annotations

from services import codes as c
from services.codes import *  # noqa: F403  (each catalogue entry as api.errors.<NAME>)

# What every route can answer, whatever it does.
EVERY_ROUTE = (
    c.PAYLOAD_TOO_LARGE,
    c.OVERLOADED,
    c.TOO_MANY_CONNECTIONS,
    c.TOO_MANY_UNFINISHED_REQUESTS,
    c.REQUEST_TIMEOUT,
)

# --- credentials ----------------------------------------------------------------------

CREDENTIAL_SHAPE = (
    c.MISSING_STUDENT_ID,
    c.MISSING_PASSWORD,
    c.INVALID_STUDENT_ID,
    c.INVALID_PASSWORD,
)
# A student's session token (`Authorization: Bearer`, /v1/sessions) that opens nothing.
BEARER = (
    c.INVALID_TOKEN,
    c.TOKEN_EXPIRED,
    c.TOKEN_REVOKED,
    c.PASSWORD_CHANGED,
    c.INSUFFICIENT_SCOPE,
)
# /v1/: Basic auth, a session token, or a POST body.
V1_CREDENTIALS = (
    *CREDENTIAL_SHAPE,
    c.MISSING_CREDENTIALS,
    c.INVALID_AUTHORIZATION,
    *BEARER,
    c.INVALID_JSON,
)

# --- the school ---------------------------------------------------------------------------

# A school query: the school judges the password, limits apply, and the school may fail.
# 502/503/504 are documented answers (with Retry-After), never a failure of ours.
SCHOOL = (
    c.INVALID_CREDENTIALS,
    c.RATE_LIMITED,
    c.TOO_MANY_FAILED_LOGINS,
    c.STUDENT_BUSY,
    c.CLIENT_SLOWED,
    c.SCHOOL_UNAVAILABLE,
    c.SCHOOL_PAGE_UNREADABLE,
    c.SCHOOL_SESSION_LOST,
    c.SCHOOL_BUSY,
    c.BREAKER_OPEN,
    c.STORAGE_UNAVAILABLE,
    c.SHUTTING_DOWN,
    c.SCHOOL_TIMEOUT,
)
# A question without credentials (the library): no password to refuse, no session to
# lose, no student's line; the per-address limit on school requests applies to what
# the cache cannot answer.
SHARED_SCHOOL = (
    c.RATE_LIMITED,
    c.SCHOOL_UNAVAILABLE,
    c.SCHOOL_PAGE_UNREADABLE,
    c.SCHOOL_BUSY,
    c.BREAKER_OPEN,
    c.STORAGE_UNAVAILABLE,
    c.SHUTTING_DOWN,
    c.SCHOOL_TIMEOUT,
)

# --- parameters ---------------------------------------------------------------------------

TERM = (c.MISSING_TERM, c.INVALID_YEAR, c.INVALID_TERM, c.UNKNOWN_TERM)
DATES = (c.INVALID_DATE, c.INVALID_RANGE)
NO_SUCH_PATH = c.NOT_FOUND.answered(
    "a path whose parameter (a feed token, an ISBN, a book id) does not have its shape: no "
    "such route",
    "路径参数（订阅令牌、ISBN、图书编号）格式不对：没有这个路由",
)
SESSION_INPUT = (c.INVALID_SYSTEM, c.INVALID_LABEL)
# A new watch's fields (POST /v1/watches).
WATCH_INPUT = (
    c.INVALID_WATCH_KIND,
    c.INVALID_WATCH_PARAM,
    c.INVALID_CHANNEL,
    c.INVALID_TARGET,
    c.TOO_MANY_WATCHES,
)
# A WeChat bind link's ticket (POST /v1/wechat/bind).
WECHAT_TICKET = (c.WECHAT_TICKET_INVALID, c.WECHAT_TICKET_USED, c.WECHAT_TICKET_EXPIRED)
# A feed URL whose token ended: gone, and why.
FEED_GONE = (c.FEED_EXPIRED, c.FEED_REVOKED, c.FEED_PASSWORD_CHANGED)

# --- operations ---------------------------------------------------------------------------

METRICS_DISABLED = c.NOT_FOUND.answered("`metrics.enabled` is false", "metrics.enabled 为 false")

# --- the 2013 account API -------------------------------------------------------------------

UPLOAD_TOO_LARGE = c.PAYLOAD_TOO_LARGE.answered(
    "an upload over `accounts.max_upload_bytes` (the connection is closed)",
    "上传超过 accounts.max_upload_bytes（随后关闭连接）",
)
LOGIN_TOKEN_REFUSED = c.INVALID_TOKEN.answered(
    "a login token that opens no account (missing, unknown, expired, or ended by a password "
    "reset): 2013's bad token, `status` 2 (`AuthNotPass` on /class/auth and /kaoshi/auth)",
    "登录令牌无效（缺少、不存在、已过期或因重置密码而失效）：即 2013 的 status 2（/class/auth、"
    "/kaoshi/auth 为 AuthNotPass）",
)
OFFICE_BINDING_ENDED = (
    c.TOKEN_EXPIRED.answered(
        "the account's academic office binding expired (unused too long): `AuthNotPass`",
        "账户绑定的教务处会话已过期：AuthNotPass",
    ),
    c.TOKEN_REVOKED.answered(
        "the account's academic office binding was revoked by its student (/v1/sessions) "
        "or replaced: `AuthNotPass`",
        "账户绑定的教务处会话已被学生撤销或被替换：AuthNotPass",
    ),
    c.PASSWORD_CHANGED.answered(
        "the academic office password the account's binding holds was changed at the "
        "school: `AuthNotPass`; send `jwcpw`, or bind again with /auth_jwc",
        "账户绑定的教务处密码已在学校修改：AuthNotPass；请提供 jwcpw 或重新 /auth_jwc",
    ),
)
ACCOUNT_LOCKED_OUT = c.TOO_MANY_FAILED_LOGINS.answered(
    "too many wrong account passwords for this user name or from this address "
    "(`limits.failed_logins_*`): every password is refused for now, the right one too",
    "该用户名或该地址的错误账户密码过多：暂时拒绝所有密码，包括正确的",
)
ACCOUNTS_DISABLED = c.NOT_CONFIGURED.answered(
    "the 2013 account API is off (`accounts.enabled: false`), or /class/auth and "
    "/kaoshi/auth without the academic office",
    "未启用 2013 账户接口（accounts.enabled: false），或未配置教务处",
)
