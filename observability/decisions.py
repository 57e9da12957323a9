"""Lockout and limit decisions, one log line each: scope, who, reason, until when.

`jnufm.decisions` is exempt from the log's template filter (observability/logs.py
RepeatFilter), which would otherwise keep one line per template per interval
whoever it is about. A lockout or a slow-down is written when it forms (by the
credential gate); a refusal by a limit is written once per subject and code per
`REFUSAL_REPEAT_S` by each worker, so a flood of refused requests is not a
flood of lines.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

log = logging.getLogger("jnufm.decisions")

REFUSAL_REPEAT_S: Final = 60.0
REMEMBERED: Final = 4096


class RefusalLog:
    """Writes one line per (code, scope, subject) per interval."""

    def __init__(
        self, interval_s: float = REFUSAL_REPEAT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str, str], tuple[float, int]] = OrderedDict()

    def refused(self, code: str, scope: str, subject: str, retry_after_s: int | None) -> None:
        key = (code, scope, subject)
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._interval_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        more = f" ({seen[1]} more since the last line)" if seen is not None and seen[1] else ""
        log.warning(
            "refused code=%s scope=%s subject=%s retry_after=%ss%s",
            code,
            scope,
            subject,
            retry_after_s if retry_after_s is not None else "-",
            more,
        )


refusals = RefusalLog()
