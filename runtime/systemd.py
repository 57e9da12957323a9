"""systemd integration without libsystemd: the notify protocol, and the unit file.

The notify protocol is one datagram of `KEY=VALUE` lines to the unix socket
named by $NOTIFY_SOCKET (a leading "@" means the abstract namespace). Only the
master speaks it: it removes the variables from its environment so that
workers and the simulator, which inherit it, stay silent (with the default
NotifyAccess=main systemd would ignore them anyway).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger("jnufm.systemd")

PROJECT_DIR = Path(__file__).resolve().parent.parent
UNIT_TEMPLATE = PROJECT_DIR / "deploy" / "jnufm.service"
UNIT_NAME = "jnufm.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")

# The paths the template is written with; rendering replaces them with real ones.
TEMPLATE_PYTHON = "/opt/jnufm/.venv/bin/python"
TEMPLATE_ROOT = "/opt/jnufm"
TEMPLATE_CONFIG = "/etc/jnufm/config.yaml"
# What ProtectHome=yes hides from a service: the home folders (systemd.exec(5)).
HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))


class Notifier:
    """Sends sd_notify messages when started by systemd with Type=notify; else does nothing."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        self.watchdog_interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            # Ping at half the period, as sd_watchdog_enabled(3) advises.
            self.watchdog_interval_s = int(usec) / 1e6 / 2
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        self._sock: socket.socket | None = None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """Send one message of `KEY=VALUE` fields; False if it could not be delivered."""
        if not self.address:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog_due(self, now: float) -> bool:
        return (
            self.watchdog_interval_s is not None
            and now - self._last_ping >= self.watchdog_interval_s
        )

    def watchdog(self, now: float) -> None:
        self._last_ping = now
        self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def render_unit(config: Path, python: str | None = None, root: Path = PROJECT_DIR) -> str:
    """deploy/jnufm.service with this installation's interpreter, directory and config file."""
    text = UNIT_TEMPLATE.read_text(encoding="utf-8")
    text = text.replace(TEMPLATE_PYTHON, python or sys.executable)
    text = text.replace(TEMPLATE_CONFIG, str(config.resolve()))
    text = text.replace(TEMPLATE_ROOT, str(root))
    paths = (python or sys.executable, str(root), str(config.resolve()))
    if any(Path(p).is_relative_to(home) for p in paths for home in HOME_DIRS):
        # ProtectHome=yes would hide the interpreter or the code from the service.
        text = text.replace("ProtectHome=yes", "ProtectHome=read-only")
    return text


def install_unit(text: str, unit_dir: Path = DEFAULT_UNIT_DIR) -> Path:
    """Write the unit into unit_dir; returns its path. Raises OSError."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    path = unit_dir / UNIT_NAME
    path.write_text(text, encoding="utf-8")
    return path
