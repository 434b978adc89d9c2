"""The local Qdrant server as a subprocess (``python -m deeplens_local.qdrant``), on a free port
and a data directory of its own, restartable on the same directory."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from qdrant_client import QdrantClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalQdrant:
    def __init__(self, data_dir: Path, optimize_delay: float = 0.5) -> None:
        self.data_dir = data_dir
        self.optimize_delay = optimize_delay
        self.port = _free_port()
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._stops = 0

    @property
    def pid(self) -> int:
        assert self._process is not None, "not running"
        return self._process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        argv = [sys.executable, "-m", "deeplens_local.qdrant", "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--optimize-delay", str(self.optimize_delay)]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the server did not answer within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 60.0) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise
        finally:
            self._process = None
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert code in (0, -signal.SIGTERM), f"the server exited with {code}; see {self.log_path}"
        self._stops += 1
        assert self.log_path.read_text().count("Application shutdown complete") == self._stops

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kwargs: object) -> QdrantClient:
        return QdrantClient(url=self.url, **kwargs)  # type: ignore[arg-type]
