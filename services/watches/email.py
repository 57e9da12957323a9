"""The e-mail channel: a watch's notice as a plain-text UTF-8 message through the SMTP
server of `watches.smtp`, sent with aiosmtplib.

The message is in Chinese first, then English; its subject is the notice's title, and
its Message-ID is made of the event key (`<event_key@sender's domain>`): every delivery
of one event carries the same one, so a mail system (or a reader's filter) can tell a
second delivery after a crash from a new event.

What the server said decides: accepted -> delivered; a permanent refusal (5xx: a
mailbox that does not exist, a sender refused) -> give up; anything else (4xx, a
timeout, no connection, a dropped session) -> retry later. The SMTP password comes from
the environment (`password_env`) or a file (`password_file`), never from config.yaml;
it is read when the channel is made, and never reaches a log line or last_error.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Final

import aiosmtplib

from secret_key import read_key_file
from services.watches.notices import Notice
from services.watches.outbox import Outcome, Target
from settings import SmtpSettings

# The Message-ID's domain when the sender has none.
FALLBACK_DOMAIN: Final = "jnufm.invalid"


def smtp_password(smtp: SmtpSettings, env: Mapping[str, str]) -> str | None:
    """The SMTP password: from `password_file` if set, else the environment variable
    `password_env`; None when there is none (no login).

    Raises OSError when the file cannot be read.
    """
    if smtp.password_file:
        return read_key_file(smtp.password_file).key or None
    return env.get(smtp.password_env) or None


def message_id(event_key: str, sender: str) -> str:
    """The Message-ID of every delivery of one event."""
    _, address = email.utils.parseaddr(sender)
    domain = address.rpartition("@")[2] if "@" in address else ""
    return f"<{event_key}@{domain or FALLBACK_DOMAIN}>"


def notice_message(notice: Notice, sender: str, to: str) -> EmailMessage:
    """The message of a notice (ValueError for an address a header cannot hold)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = notice.title
    message["Message-ID"] = message_id(notice.event_key, sender)
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message["X-Jnufm-Event"] = notice.event_key
    body = "\n".join(
        [
            notice.title,
            "",
            notice.text,
            "",
            "----",
            notice.text_en,
            "",
            f"jnu.fm 提醒 / notice {notice.event_key[:12]}",
            "",
        ]
    )
    message.set_content(body, subtype="plain", charset="utf-8")
    return message


class EmailDeliverer:
    """The e-mail channel (see the module docstring)."""

    channel: Final = "email"

    def __init__(self, smtp: SmtpSettings, password: str | None) -> None:
        self._smtp = smtp
        self._password = password

    async def deliver(self, target: Target, notice: Notice) -> Outcome:
        smtp = self._smtp
        if not smtp.host:
            return Outcome.give_up("no SMTP server configured")
        try:
            message = notice_message(notice, smtp.sender, target.address)
        except (ValueError, TypeError):
            return Outcome.give_up("the e-mail address cannot be written in a header")
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username or None,
                password=self._password if smtp.username else None,
                use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",
                timeout=smtp.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            return _refused("the recipient", codes[-1] if codes else 0)
        except aiosmtplib.SMTPAuthenticationError as exc:
            # Our login, not this message: every message waits for it to be fixed.
            return Outcome.retry(f"the SMTP server refused our login: SMTP {exc.code}")
        except aiosmtplib.SMTPResponseException as exc:
            return _refused("the SMTP server", exc.code)
        except (
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPServerDisconnected,
        ) as exc:
            return Outcome.retry(f"the SMTP server cannot be reached ({type(exc).__name__})")
        except aiosmtplib.SMTPException as exc:
            return Outcome.retry(f"the SMTP server cannot be used ({type(exc).__name__})")
        except OSError as exc:
            return Outcome.retry(f"the SMTP server cannot be reached ({type(exc).__name__})")
        return Outcome.delivered()


def _refused(who: str, code: int) -> Outcome:
    why = f"{who} refused: SMTP {code}"
    return Outcome.give_up(why) if 500 <= code < 600 else Outcome.retry(why)
