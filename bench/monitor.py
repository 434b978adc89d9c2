"""Memory and CPU of the stack's processes, sampled with psutil in a background thread.

Tracks the peak RSS of the search API (each of its processes, and all together) and of every
Dagster run worker (a process that a code server started for one run, below the daemon), and the
CPU time that processes outside the bench and its stack used meanwhile: on a shared machine that
load skews every number, so it is reported.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

from deeplens_local.stack.stack import Stack


@dataclass
class Peaks:
    """Largest RSS seen: of one API process, of the API's processes together (uvicorn and its
    workers, in one sample), and of each run worker (by pid)."""

    api: int = 0
    api_total: int = 0
    workers: dict[int, int] = field(default_factory=dict)

    def see(self, rss: int, api: bool, worker_pid: int | None) -> None:
        if api:
            self.api = max(self.api, rss)
        if worker_pid is not None:
            self.workers[worker_pid] = max(self.workers.get(worker_pid, 0), rss)

    def see_api_total(self, rss: int) -> None:
        self.api_total = max(self.api_total, rss)

    def as_json(self) -> dict[str, object]:
        mib = 1 << 20
        worker = max(self.workers.values(), default=0)
        return {
            "api_peak_rss_mib": round(self.api / mib, 1) if self.api else None,
            "api_processes_peak_rss_mib": round(self.api_total / mib, 1)
            if self.api_total
            else None,
            "run_worker_peak_rss_mib": round(worker / mib, 1) if worker else None,
            "run_workers_seen": len(self.workers),
        }


@dataclass
class Usage:
    """CPU seconds over a window: all of the machine, ours (bench + its children + stack) and
    everyone else's. `bench` is the bench process alone (the load generator)."""

    seconds: float
    machine_busy: float
    ours: float
    bench: float
    by_process: dict[str, float] = field(default_factory=dict)

    @property
    def others(self) -> float:
        return max(0.0, self.machine_busy - self.ours)

    def as_json(self) -> dict[str, object]:
        cores = self.seconds or 1.0
        return {
            "wall_seconds": round(self.seconds, 1),
            "machine_cpu_seconds": round(self.machine_busy, 1),
            "bench_and_stack_cpu_seconds": round(self.ours, 1),
            "bench_process_cpu_seconds": round(self.bench, 1),
            "other_processes_cpu_seconds": round(self.others, 1),
            "other_processes_mean_cores": round(self.others / cores, 2),
            "cpu_seconds_by_process": {
                name: round(cpu, 1)
                for name, cpu in sorted(self.by_process.items(), key=lambda kv: -kv[1])
                if cpu >= 0.05
            },
        }


@dataclass
class _Mark:
    at: float
    busy: float
    ours: float
    bench: float
    by_process: dict[str, float]


@dataclass
class Monitor:
    stack: Stack
    interval: float = 1.0  # at 0.2 s, sampling took about 0.2 of a core from the stack
    total: Peaks = field(default_factory=Peaks)
    window: Peaks = field(default_factory=Peaks)
    _cpu: dict[int, float] = field(default_factory=dict)
    _ours_total: float = 0.0
    _by_process: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def begin_window(self) -> None:
        """Start a new window for `window`'s peaks (one per phase)."""
        with self._lock:
            self.window = Peaks()

    def mark(self) -> _Mark:
        self.sample()
        own = psutil.Process().cpu_times()
        with self._lock:
            return _Mark(
                time.monotonic(),
                _machine_busy(),
                self._ours_total,
                own.user + own.system,
                dict(self._by_process),
            )

    def usage_since(self, mark: _Mark) -> Usage:
        now = self.mark()
        by_process = {
            name: cpu - mark.by_process.get(name, 0.0) for name, cpu in now.by_process.items()
        }
        return Usage(
            now.at - mark.at,
            now.busy - mark.busy,
            now.ours - mark.ours,
            now.bench - mark.bench,
            by_process,
        )

    def run_workers(self) -> list[psutil.Process]:
        """Live run workers: children of the daemon's code servers that run one job."""
        daemon = self._process("dagster-daemon")
        if daemon is None:
            return []
        found = []
        for proc in _descendants(daemon):
            try:
                if "spawn_main" in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def api_process(self) -> psutil.Process | None:
        return self._process("search-api")

    def _process(self, name: str) -> psutil.Process | None:
        for managed in self.stack.processes:
            if managed.name == name:
                try:
                    return psutil.Process(managed.pid)
                except psutil.Error:
                    return None
        return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        me = psutil.Process(os.getpid())
        # What each process is: CPU time is also summed per kind, to show where it goes. The
        # stack's processes are the bench's children too; they are named first.
        named: dict[int, tuple[psutil.Process, str]] = {}
        for managed in self.stack.processes:
            try:
                root = psutil.Process(managed.pid)
            except psutil.Error:
                continue
            for proc in [root, *_descendants(root)]:
                named.setdefault(proc.pid, (proc, managed.name))
        for proc in [me, *_descendants(me)]:
            named.setdefault(proc.pid, (proc, _bench_part(proc)))
        procs = list(named.values())
        api = self.api_process()
        api_pids = {api.pid, *(p.pid for p in _descendants(api))} if api is not None else set()
        workers = {p.pid for p in self.run_workers()}
        api_rss = 0
        with self._lock:
            for proc, name in procs:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                cpu = times.user + times.system
                used = max(0.0, cpu - self._cpu.get(proc.pid, cpu))
                self._ours_total += used
                self._cpu[proc.pid] = cpu
                name = "dagster run workers" if proc.pid in workers else name
                self._by_process[name] = self._by_process.get(name, 0.0) + used
                is_api = proc.pid in api_pids
                api_rss += rss if is_api else 0
                worker = proc.pid if proc.pid in workers else None
                self.total.see(rss, is_api, worker)
                self.window.see(rss, is_api, worker)
            self.total.see_api_total(api_rss)
            self.window.see_api_total(api_rss)


def _bench_part(proc: psutil.Process) -> str:
    try:
        return "py-spy (profiler)" if proc.name() == "py-spy" else "bench (load generator)"
    except psutil.Error:
        return "bench (load generator)"


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return list(proc.children(recursive=True))
    except psutil.Error:
        return []


def _machine_busy() -> float:
    """CPU seconds the machine spent on any work (guest time is already inside user time)."""
    t = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return float(sum(getattr(t, f, 0.0) for f in fields))
