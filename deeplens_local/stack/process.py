"""Child processes of the local stack: started in their own session, logged to a file,
stopped (SIGTERM, then SIGKILL) as a group, and killed with the parent if it dies."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._user = user
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._start()

    def _start(self) -> None:
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env,
            cwd=self._cwd,
            user=self._user,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.info("started %s (pid %d), log %s", self.name, self.popen.pid, self.log_path)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (`sig`: SIGKILL for a crash) and start again with the same command."""
        self.stop(sig=sig)
        self._start()

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process and everything it started (SIGSTOP freezes them all)."""
        _signal_group(self.pid, sig)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with code {self.popen.returncode}; "
                f"last lines of {self.log_path}:\n{tail(self.log_path)}"
            )

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        """Stop the leader, then whatever it started in its group (e.g. gRPC code servers)."""
        if self.alive():
            _signal_group(self.pid, sig)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
                _signal_group(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        kill_group(self.pid, timeout=5)
        self._log_file.close()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_group(pid: int, timeout: float = 10.0) -> None:
    """Stop what is left of a process group: SIGTERM, then SIGKILL after ``timeout``."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
