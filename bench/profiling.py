"""py-spy profiles of the stack's processes while they work, summarised as text.

`record` samples a process (non-blocking, so the target is not paused) into collapsed stacks
("frame;frame;... count", loadable in speedscope.app); `top` turns them into where the time goes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RATE = 20  # samples/s: at 50, py-spy took 0.18 of a core from the stack it measured
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    pid: int
    path: Path
    proc: subprocess.Popen[bytes]

    def stop(self, timeout: float = 30.0) -> None:
        """Stop sampling (py-spy writes its file on SIGINT) and wait for the file."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def record(pid: int, path: Path, seconds: float | None = None, idle: bool = False) -> Recording:
    """Start sampling `pid` and its child processes (uvicorn's workers) until `stop()`, its
    exit, or `seconds`."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [exe, "record", "-p", str(pid), "-r", str(RATE), "--nonblocking", "--subprocesses"]
    argv += ["-f", "raw"]
    argv += ["-o", str(path)]
    if seconds is not None:
        argv += ["-d", str(max(1, int(seconds)))]
    if idle:
        argv.append("--idle")
    log = open(path.with_suffix(".log"), "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return Recording(pid, path, proc)


def dump(pid: int) -> str:
    """One snapshot of every thread's stack."""
    exe = py_spy()
    if exe is None:
        return "py-spy is not installed"
    done = subprocess.run(
        [exe, "dump", "-p", str(pid), "--nonblocking"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout or done.stderr


def read_stacks(paths: Iterable[Path]) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in paths:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                frames, _, count = line.rpartition(" ")
                if frames and count.isdigit():
                    stacks[tuple(_LINE.sub(")", f) for f in frames.split(";"))] += int(count)
    return stacks


# Where a sampled stack's time goes: the first rule that matches wins. "leaf" rules look at the
# innermost frame only (a thread parked in a wait), "any" rules at every frame.
CATEGORIES: list[tuple[str, str, tuple[str, ...]]] = [
    ("process start (imports)", "any", ("_find_and_load",)),
    (
        "idle: thread waiting / event loop polling",
        "leaf",
        ("Condition.wait", "Runner.run", "select (selectors"),
    ),
    ("idle: LISTEN for notifications", "any", ("Connection.notifies",)),
    ("model inference (onnxruntime)", "any", ("Session.run",)),
    ("image decode + resize (Pillow)", "any", ("(PIL/", "model/imaging.py", "model/preprocess.py")),
    ("sha256", "any", ("sha256",)),
    ("blob store I/O", "any", ("BlobStore.", "read_bytes")),
    ("PostgreSQL (incl. waiting for it)", "any", ("(psycopg", "(sqlalchemy")),
    ("Qdrant client", "any", ("(qdrant_client",)),
    ("Kafka", "any", ("(confluent_kafka", "deeplens/kafka.py")),
    (
        "HTTP serving (uvicorn, starlette, multipart)",
        "any",
        ("(uvicorn", "(starlette", "multipart"),
    ),
    ("Dagster framework", "any", ("(dagster/",)),
]


def _without_idle(categories: list[tuple[str, float]]) -> dict[str, float]:
    busy = [(k, v) for k, v in categories if not k.startswith("idle")]
    total = sum(v for _, v in busy) or 1.0
    return {k: round(100 * v / total, 1) for k, v in busy}


def categorise(frames: tuple[str, ...]) -> str:
    for name, where, patterns in CATEGORIES:
        scope = frames[-1:] if where == "leaf" else frames
        if any(p in frame for frame in scope for p in patterns):
            return name
    return "other"


@dataclass
class Profile:
    samples: int = 0
    self_time: list[tuple[str, float]] = field(default_factory=list)
    total_time: list[tuple[str, float]] = field(default_factory=list)
    categories: list[tuple[str, float]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "thread_seconds_sampled": round(self.samples / RATE, 1),
            "where_time_goes_percent": dict(self.categories),
            "where_busy_time_goes_percent": _without_idle(self.categories),
            "top_self_percent": dict(self.self_time),
            "top_total_percent": dict(self.total_time),
        }


def top(paths: Iterable[Path], n: int = 15) -> Profile:
    """The functions holding most samples: as the leaf (self) and anywhere on the stack."""
    stacks = read_stacks(paths)
    total = sum(stacks.values())
    if not total:
        return Profile()
    leaf: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for frames, count in stacks.items():
        kinds[categorise(frames)] += count
        leaf[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    boring = ("<module>", "_bootstrap", "run (threading", "_worker (concurrent", "main (")
    inclusive = [(f, c) for f, c in anywhere.most_common() if not f.startswith(boring)]
    return Profile(
        samples=total,
        self_time=[(f, round(100 * c / total, 1)) for f, c in leaf.most_common(n)],
        total_time=[(f, round(100 * c / total, 1)) for f, c in inclusive[:n]],
        categories=[(k, round(100 * c / total, 1)) for k, c in kinds.most_common()],
    )


class WorkerProfiler:
    """Records every run worker that appears while it is on (at most `limit` of them), and takes
    one stack snapshot (`py-spy dump`) of each a few seconds into its run."""

    def __init__(
        self,
        find_workers: Callable[[], list[psutil.Process]],
        directory: Path,
        limit: int = 8,
        dump_after: float = 6.0,
    ) -> None:
        self._find = find_workers
        self._dir = directory
        self._limit = limit
        self._dump_after = dump_after
        self._recordings: dict[int, Recording] = {}
        self._first_seen: dict[int, float] = {}
        self.dumps: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-profiler", daemon=True)

    def start(self) -> WorkerProfiler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for proc in self._find():
                if proc.pid in self._recordings or len(self._recordings) >= self._limit:
                    continue
                path = self._dir / f"run-worker-{proc.pid}.txt"
                self._recordings[proc.pid] = record(proc.pid, path, seconds=900)
                self._first_seen[proc.pid] = now
            for pid, rec in self._recordings.items():
                due = now - self._first_seen[pid] > self._dump_after
                if pid not in self.dumps and due and rec.proc.poll() is None:
                    self.dumps[pid] = dump(pid)

    def stop(self) -> list[Path]:
        self._stop.set()
        self._thread.join()
        for rec in self._recordings.values():
            rec.stop()
        return [r.path for r in self._recordings.values()]
