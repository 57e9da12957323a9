"""Start the bundled school simulator as a child process when the config says so."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from runtime.worker import die_with_parent
from settings import SimulatorSettings

log = logging.getLogger("jnufm.simulator")

PROJECT_DIR = Path(__file__).resolve().parent.parent


class SimulatorError(Exception):
    """The simulator could not be started."""


@dataclass
class SimulatorProcess:
    """`python -m schoolsim` run beside the server, stopped with it."""

    settings: SimulatorSettings
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/__sim/stats", timeout=1):  # noqa: S310 - our own URL
                return True
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        """Start it and wait until it answers. Raises SimulatorError."""
        if self._answers():
            raise SimulatorError(
                f"simulator: port {self.settings.port} is already serving; stop that first"
            )
        s = self.settings
        args = [sys.executable, "-m", "schoolsim", "--host", s.host, "--port", str(s.port)]
        args += ["--profile", s.profile, "--seed", str(s.seed)]
        self.popen = subprocess.Popen(  # noqa: S603 - fixed arguments
            args, cwd=PROJECT_DIR, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + s.start_timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SimulatorError(
                    f"simulator: exited with code {self.popen.returncode} at start"
                )
            if self._answers():
                log.info("school simulator (profile %s) at %s", s.profile, self.url)
                return
            time.sleep(0.05)
        self.stop()
        raise SimulatorError(f"simulator: did not answer within {s.start_timeout_s:g}s")

    def exited(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
