"""Every error code an answer can carry: its HTTP status and what it means (README's
error table), written once.

The service errors (services/errors.py) and every place that raises or writes an
error name an entry here (`BadInput(codes.INVALID_RANGE, "...")`), so the code on
the wire and its status come from one line; the API description (api/errors.py)
groups these entries per route, and only rewords an entry's meaning where a route
answers the same code for a reason of its own (`ErrorCode.answered`). One code may
have two entries when it is answered at two statuses (`token_expired`: 401 for a
session token, 410 for a feed). This module imports nothing of the server's, so
every layer may use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One error code at one status, and when it is answered (English, Chinese)."""

    status: int
    code: str
    when: str
    when_zh: str

    def answered(self, when: str, when_zh: str) -> ErrorCode:
        """The same code and status, described for one route's own reason."""
        return dataclasses.replace(self, when=when, when_zh=when_zh)


# --- the request itself -----------------------------------------------------------------

BAD_REQUEST = ErrorCode(
    400,
    "bad_request",
    "a parameter that is not valid UTF-8, a malformed form body",
    "参数不是合法的 UTF-8，或表单格式错误",
)
UNAUTHORIZED = ErrorCode(
    401, "unauthorized", "a request Tornado itself refused as unauthorized", "请求未获授权"
)
NOT_FOUND = ErrorCode(404, "not_found", "an unknown route or file", "没有这个路由或文件")
METHOD_NOT_ALLOWED = ErrorCode(
    405,
    "method_not_allowed",
    "a method the route does not answer (an invented one too)",
    "该路由不接受此方法（包括自造的方法）",
)
LENGTH_REQUIRED = ErrorCode(
    411, "length_required", "a body without its length", "请求体没有给出长度"
)
PAYLOAD_TOO_LARGE = ErrorCode(
    413,
    "payload_too_large",
    "a body over `http.max_body_bytes` (the connection is closed)",
    "请求体超过 http.max_body_bytes（随后关闭连接）",
)
UNSUPPORTED_MEDIA_TYPE = ErrorCode(
    415,
    "unsupported_media_type",
    "a POST, PUT or DELETE body of a type the route does not read (a form; JSON on /v1/)",
    "POST、PUT 或 DELETE 请求体的类型不是该路由读取的（表单；/v1/ 还有 JSON）",
)
RANGE_NOT_SATISFIABLE = ErrorCode(
    416,
    "range_not_satisfiable",
    "a `Range` outside the static file",
    "Range 超出静态文件的范围",
)
RATE_LIMITED = ErrorCode(
    429,
    "rate_limited",
    "too many requests from this address or registered client",
    "该地址或注册客户端请求过多",
)
OVERLOADED = ErrorCode(
    503,
    "overloaded",
    "the worker already has `http.max_connections` open connections",
    "工作进程的连接数已达 http.max_connections",
)
SHUTTING_DOWN = ErrorCode(503, "shutting_down", "the server is stopping", "服务器正在停止")
# Connections shared fairly (runtime/connections.py): answered on any route, then closed.
TOO_MANY_CONNECTIONS = ErrorCode(
    429,
    "too_many_connections",
    "this address (or registered client) already holds `connections.per_address` open "
    "connections (the connection is closed)",
    "该地址（或注册客户端）的连接数已达 connections.per_address（随后关闭连接）",
)
TOO_MANY_UNFINISHED_REQUESTS = ErrorCode(
    429,
    "too_many_unfinished_requests",
    "this address (or registered client) already has `connections.per_address_unfinished` "
    "requests whose body is still coming (the connection is closed)",
    "该地址（或注册客户端）请求体尚未发完的请求数已达 connections.per_address_unfinished"
    "（随后关闭连接）",
)
REQUEST_TIMEOUT = ErrorCode(
    408,
    "request_timeout",
    "a body sent slower than `connections.min_body_bytes_per_s`, or, while the worker is "
    "near its cap, headers not sent within `connections.header_grace_s` (the connection is "
    "closed)",
    "请求体发送慢于 connections.min_body_bytes_per_s，或工作进程接近连接上限时请求头未在 "
    "connections.header_grace_s 内发完（随后关闭连接）",
)
STORAGE_UNAVAILABLE = ErrorCode(
    503,
    "storage_unavailable",
    "our database failed and nothing in memory answers",
    "数据库不可用，内存中也没有答案",
)
INTERNAL_ERROR = ErrorCode(
    500,
    "internal_error",
    "a fault of ours (logged with its request id); never a school's failure",
    "服务器内部错误（已连同请求编号记录）；不是学校系统的故障",
)
NOT_CONFIGURED = ErrorCode(
    404,
    "not_configured",
    "the system the route needs (the academic office, calendar feeds, the library) is not "
    "configured on this server",
    "本服务器未配置该路由所需的系统（教务处、日历订阅、图书馆）",
)
FORBIDDEN = ErrorCode(
    403,
    "forbidden",
    "a client outside `metrics.allow_networks` without the bearer token",
    "客户端不在 metrics.allow_networks 内，也没有令牌",
)

# --- credentials ----------------------------------------------------------------------

# Credentials that cannot be right (missing, or not of the school's shape) are refused as
# unauthorized, as a wrong password is: nothing is asked of the school.
MISSING_STUDENT_ID = ErrorCode(401, "missing_student_id", "no student number", "缺少学号")
MISSING_PASSWORD = ErrorCode(401, "missing_password", "no password", "缺少密码")
INVALID_STUDENT_ID = ErrorCode(
    401, "invalid_student_id", "a student number that is not 6-16 digits", "学号不是 6-16 位数字"
)
INVALID_PASSWORD = ErrorCode(
    401,
    "invalid_password",
    "a card password that is not 6 digits, or an academic office password that is not "
    "1-32 printable ASCII characters",
    "校园卡密码不是 6 位数字，或教务处密码不是 1-32 个可打印 ASCII 字符",
)
MISSING_CREDENTIALS = ErrorCode(
    401,
    "missing_credentials",
    "neither Basic auth nor a POST body with credentials (`WWW-Authenticate: Basic`)",
    "既没有 Basic 认证，也没有带凭据的 POST 请求体",
)
INVALID_AUTHORIZATION = ErrorCode(
    401,
    "invalid_authorization",
    "an Authorization header that is not `Basic base64(student_id:password)`",
    "Authorization 头不是 Basic base64(学号:密码)",
)
INVALID_JSON = ErrorCode(
    400,
    "invalid_json",
    "a JSON body that is not an object of strings",
    "JSON 请求体不是字符串对象",
)
INVALID_CREDENTIALS = ErrorCode(
    401,
    "invalid_credentials",
    "the school system refused the student number or password",
    "学校系统拒绝了学号或密码",
)
TOO_MANY_FAILED_LOGINS = ErrorCode(
    429,
    "too_many_failed_logins",
    "too many wrong passwords for this student or from this address: every password is "
    "refused for now, the right one too",
    "该学号或该地址的错误密码过多：暂时拒绝所有密码，包括正确的",
)
STUDENT_BUSY = ErrorCode(
    429,
    "student_busy",
    "too many of this student's queries are waiting for the school",
    "该学生排队等待学校系统的查询过多",
)
CLIENT_SLOWED = ErrorCode(
    429,
    "client_slowed",
    "a registered client over its failure budget (`clients.failures_max` wrong passwords): "
    "its logins that need the school are slowed down for now",
    "注册客户端超出其失败预算：需要学校判断的登录暂时被限速",
)

# A student's session token (`Authorization: Bearer`, /v1/sessions) that opens nothing.
INVALID_TOKEN = ErrorCode(
    401,
    "invalid_token",
    "a Bearer token that is no student's session token (unknown or malformed)",
    "Bearer 令牌不是学生的会话令牌（不存在或格式错误）",
)
TOKEN_EXPIRED = ErrorCode(
    401,
    "token_expired",
    "a session token unused for `tokens.idle_s`, or older than `tokens.max_age_s`",
    "会话令牌闲置超过 tokens.idle_s，或超过 tokens.max_age_s",
)
TOKEN_REVOKED = ErrorCode(
    401,
    "token_revoked",
    "a session token its student revoked, or one replaced by newer ones",
    "会话令牌已被学生撤销，或已被更新的令牌替换",
)
PASSWORD_CHANGED = ErrorCode(
    401,
    "password_changed",
    "a session token whose password changed at the school (refused at a login, or "
    "another one accepted): every token made with it has ended",
    "会话令牌所存的密码已在学校修改（登录被拒，或另一密码被接受）：用它创建的令牌均已失效",
)
INSUFFICIENT_SCOPE = ErrorCode(
    403,
    "insufficient_scope",
    "a session token of the other school system",
    "另一个学校系统的会话令牌",
)
# A feed URL whose token ended: gone (410), with the session token's codes saying why.
FEED_EXPIRED = ErrorCode(
    410,
    "token_expired",
    "a feed not read for `tokens.idle_s`, or older than `tokens.max_age_s`",
    "订阅闲置超过 tokens.idle_s，或超过 tokens.max_age_s",
)
FEED_REVOKED = ErrorCode(
    410,
    "token_revoked",
    "a feed its student revoked, or one replaced by newer tokens",
    "订阅已被学生撤销，或已被更新的令牌替换",
)
FEED_PASSWORD_CHANGED = ErrorCode(
    410,
    "password_changed",
    "a feed made with an academic office password since changed at the school",
    "创建订阅所用的教务处密码已在学校修改",
)
UNKNOWN_TOKEN = ErrorCode(
    404,
    "unknown_token",
    "no such token: a feed URL's never made (or ended long ago), a session id that is "
    "none of this student's live tokens",
    "没有该令牌：订阅链接从未创建（或早已失效），或会话编号不属于该学生的有效令牌",
)
INVALID_SYSTEM = ErrorCode(
    400,
    "invalid_system",
    "a system other than card or academic",
    "system 不是 card 或 academic",
)
INVALID_LABEL = ErrorCode(
    400, "invalid_label", "a label over 64 characters", "label 超过 64 个字符"
)
# A WeChat bind link's ticket (POST /v1/wechat/bind): one binding per link, for a while.
WECHAT_TICKET_INVALID = ErrorCode(
    400,
    "wechat_ticket_invalid",
    "a bind link's ticket that is missing, malformed, altered, or of an official account "
    "no longer configured",
    "绑定链接的票据缺失、格式错误、被改动，或其公众号已不再配置",
)
WECHAT_TICKET_USED = ErrorCode(
    409,
    "wechat_ticket_used",
    "a bind link already used: each link binds once (send 绑定 in the chat for a new one)",
    "绑定链接已经用过：每个链接只能绑定一次（请在公众号中发送“绑定”获取新链接）",
)
WECHAT_TICKET_EXPIRED = ErrorCode(
    410,
    "wechat_ticket_expired",
    "a bind link older than `wechat.bind_link_ttl_s` (send 绑定 in the chat for a new one)",
    "绑定链接已超过 wechat.bind_link_ttl_s 而过期（请在公众号中发送“绑定”获取新链接）",
)

# --- students' watches (/v1/watches) ------------------------------------------------------

INVALID_WATCH_KIND = ErrorCode(
    400,
    "invalid_watch_kind",
    "a watch kind that is not card_transaction, low_balance, grade, exam_soon or timetable_change",
    "提醒类型不是 card_transaction、low_balance、grade、exam_soon 或 timetable_change",
)
INVALID_WATCH_PARAM = ErrorCode(
    400,
    "invalid_watch_param",
    "a param that does not suit the kind (low_balance: a threshold in yuan; exam_soon: "
    "hours; the others: none)",
    "参数与提醒类型不符（low_balance：金额阈值；exam_soon：小时数；其他：无参数）",
)
INVALID_CHANNEL = ErrorCode(
    400,
    "invalid_channel",
    "a channel that is not webhook or email (a WeChat watch is made in the chat)",
    "通知渠道不是 webhook 或 email（微信提醒请在公众号对话中设置）",
)
INVALID_TARGET = ErrorCode(
    400,
    "invalid_target",
    "a webhook URL that is not https (or points at a private network), or an e-mail "
    "address that is not one",
    "webhook 地址不是 https（或指向内网），或电子邮件地址无效",
)
TOO_MANY_WATCHES = ErrorCode(
    409,
    "too_many_watches",
    "the student already has `watches.per_student` watches (delete one first)",
    "该学号的提醒已达 watches.per_student 个上限（请先删除一个）",
)
UNKNOWN_WATCH = ErrorCode(
    404,
    "unknown_watch",
    "no such live watch of this student (deleted, ended, or never made)",
    "没有该学生的这个提醒（已删除、已结束或不存在）",
)

# --- the school ---------------------------------------------------------------------------

SCHOOL_UNAVAILABLE = ErrorCode(
    502, "school_unavailable", "the school system failed", "学校系统出错"
)
SCHOOL_PAGE_UNREADABLE = ErrorCode(
    502,
    "school_page_unreadable",
    "the school sent a page we cannot read",
    "学校返回了无法解析的页面",
)
SCHOOL_SESSION_LOST = ErrorCode(
    502, "school_session_lost", "the school dropped the session", "学校系统丢失了会话"
)
SCHOOL_BUSY = ErrorCode(
    503,
    "school_busy",
    "over the school's budget of concurrent requests, and no stale answer",
    "超出学校系统的并发预算，且没有旧答案可用",
)
BREAKER_OPEN = ErrorCode(
    503,
    "school_unavailable",
    "the breaker is open (the school failed repeatedly), and no stale answer",
    "熔断器打开（学校系统多次失败），且没有旧答案可用",
)
SCHOOL_TIMEOUT = ErrorCode(
    504,
    "school_timeout",
    "the school did not answer within the query's deadline",
    "学校系统未在期限内回答",
)
QUERY_REJECTED = ErrorCode(
    400,
    "query_rejected",
    'the card center refused the query as invalid (e.g. its "date illegal" page)',
    "校园卡中心认为查询无效",
)

# --- parameters ---------------------------------------------------------------------------

MISSING_TERM = ErrorCode(
    400,
    "missing_term",
    "no term under way to take the year or term from (no term of `campus.terms` has "
    "started): give both",
    "没有进行中的学期可补全学年或学期（campus.terms 中没有已开始的学期）：请两者都给出",
)
UNKNOWN_TERM = ErrorCode(
    404,
    "unknown_term",
    "a term the academic office does not offer (not in its lists of years and terms)",
    "教务处没有该学期（不在其学年、学期列表中）",
)
INVALID_YEAR = ErrorCode(
    400, "invalid_year", "a year that is not 2000-2100 (or is overlong)", "学年不在 2000-2100"
)
INVALID_TERM = ErrorCode(
    400, "invalid_term", "a term that is not 1 or 2 (or is overlong)", "学期不是 1 或 2"
)
INVALID_FRESH = ErrorCode(
    400,
    "invalid_fresh",
    "`fresh` other than true, false, 1, 0, yes or no",
    "fresh 不是 true、false、1、0、yes 或 no",
)
INVALID_DATE = ErrorCode(
    400,
    "invalid_date",
    "a date not written YYYY-MM-DD, or no such day",
    "日期不是 YYYY-MM-DD，或没有这一天",
)
INVALID_RANGE = ErrorCode(
    400,
    "invalid_range",
    "reversed, before 2000, after tomorrow, or longer than `api.history_max_days`",
    "日期范围颠倒、早于 2000 年、晚于明天或超过 api.history_max_days 天",
)
INVALID_FEED = ErrorCode(
    400,
    "invalid_feed",
    "a feed other than all, timetable, exams",
    "feed 不是 all、timetable 或 exams",
)

# --- the library ----------------------------------------------------------------------------

MISSING_QUERY = ErrorCode(
    400,
    "missing_query",
    "no search query, or one of spaces only (`query` or `q`; on the 2013 search, neither it "
    "nor the path's last part)",
    "缺少检索词（query 或 q），或只有空白",
)
INVALID_QUERY = ErrorCode(
    400,
    "invalid_query",
    "a query over 200 characters, or with control characters",
    "检索词超过 200 个字符，或含控制字符",
)
PAGE_NOT_SERVED = ErrorCode(
    404,
    "page_not_served",
    "a Zhuhai results page deeper than `school.library_zhuhai.max_pages` (each page costs "
    "the catalogue a request per page before it)",
    "珠海校区的结果页超过 school.library_zhuhai.max_pages（每页都要先请求之前的各页）",
)
INVALID_PAGE = ErrorCode(
    400, "invalid_page", "a page that is not a whole number from 1 to 50", "页码不是 1-50 的整数"
)
INVALID_CAMPUS = ErrorCode(
    400,
    "invalid_campus",
    "a campus other than main or zhuhai (`iszh` other than 0 or 1)",
    "campus 不是 main 或 zhuhai（iszh 不是 0 或 1）",
)
INVALID_AVAILABLE = ErrorCode(
    400,
    "invalid_available",
    "`available` other than 0, 1, true or false",
    "available 不是 0、1、true 或 false",
)
# An ISBN, book id or record URL that cannot name a book: no such resource (404), as a path
# of another shape is none; the catalogue is not asked.
INVALID_ISBN = ErrorCode(
    404,
    "invalid_isbn",
    "not a valid ISBN-10 or ISBN-13 (a wrong check digit too): no such cover, nothing is asked",
    "不是有效的 ISBN-10 或 ISBN-13（校验位错误也是）：没有该封面，不会查询",
)
INVALID_BOOK_ID = ErrorCode(
    404,
    "invalid_book_id",
    "a book id that is not a record number of its catalogue (`b1234567`; Zhuhai `zh-300001`)",
    "图书编号不是该目录的记录号（b1234567；珠海校区 zh-300001）",
)
INVALID_URL = ErrorCode(
    404,
    "invalid_url",
    "a `url` that is not the URL-safe base64 of a record URL of the configured catalogues "
    "(never fetched)",
    "url 不是本服务器所配置目录的记录链接的 URL 安全 base64（不会访问）",
)
UNKNOWN_BOOK = ErrorCode(404, "unknown_book", "no such record in the catalogue", "目录中没有该记录")

# --- the 2013 account API -------------------------------------------------------------------

MISSING_ACCOUNT_PASSWORD = ErrorCode(
    400, "missing_password", "no account password (`password`, `oldpassword`)", "缺少账户密码"
)
INVALID_ACCOUNT_PASSWORD = ErrorCode(
    400,
    "invalid_password",
    "an account password (`password`, `oldpassword`) that is not 6-128 characters",
    "账户密码（password、oldpassword）不是 6-128 个字符",
)

MISSING_USERNAME = ErrorCode(400, "missing_username", "no user name", "缺少用户名")
INVALID_USERNAME = ErrorCode(
    400,
    "invalid_username",
    "a user name that is not 1-64 of a-z, 0-9 and `_.@-` starting with a letter or digit "
    "(compared without case)",
    "用户名不是 1-64 个 a-z、0-9 和 _.@- 字符（以字母或数字开头，不区分大小写）",
)
INVALID_PROFILE = ErrorCode(
    400,
    "invalid_profile",
    "a profile field too long (nickname and realname 64 characters, sex 16, signature 256)",
    "资料字段过长（昵称、真实姓名 64 个字符，性别 16，签名 256）",
)
MISSING_FILE = ErrorCode(
    400, "missing_file", "no multipart form field `file`", "缺少 multipart 表单字段 file"
)
INVALID_IMAGE = ErrorCode(
    400,
    "invalid_image",
    "a file that is not a PNG, JPEG or GIF picture, or a damaged one",
    "文件不是 PNG、JPEG 或 GIF 图片，或已损坏",
)
IMAGE_TOO_LARGE = ErrorCode(
    400,
    "image_too_large",
    "a picture with a side over `accounts.max_image_side` pixels, or too detailed to store",
    "图片的边长超过 accounts.max_image_side 像素，或细节过多无法保存",
)
NOT_BOUND = ErrorCode(
    409,
    "not_bound",
    "the account has no academic office bound to it (bind one with /auth_jwc)",
    "账户尚未绑定教务处（请先 /auth_jwc）",
)
UNKNOWN_UPLOAD = ErrorCode(
    404,
    "unknown_upload",
    "no such picture (replaced by a newer one, or never made)",
    "没有该图片（已被替换或不存在）",
)


def catalogue() -> dict[str, ErrorCode]:
    """Every entry of this module by its name."""
    return {name: value for name, value in globals().items() if isinstance(value, ErrorCode)}
