"""What the soak watches: the service's processes, its log, and the samples taken of them.

A sample covers one interval: the RSS, open descriptors and threads of every live process
of a session (the service's: uvicorn's workers and plugin sandboxes included; the
database's when the script started one), read from ``/proc``; the CPU they and the
generator used; the traffic's latencies and errors (``soak_mix.Interval``); and the
``error``/``critical`` lines the service logged meanwhile.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench import Child, percentile, session_cpu_seconds, session_stats
from soak_mix import Interval, Traffic

DATABASE_FILE = "revocation.sqlite3"
LEVEL_ALARM = re.compile(rb'"level": ?"(?:error|critical)"')
"""An error line, compact (orjson, the service) or spaced (``json.dumps``)."""


# --- the processes watched --------------------------------------------------------------


@dataclass
class Footprint:
    """RSS, descriptors and threads of every live process of one session."""

    processes: int = 0
    rss_kb: int = 0
    fds: int = 0
    sockets: int = 0
    threads: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "processes": self.processes,
            "rss_kb": self.rss_kb,
            "fds": self.fds,
            "sockets": self.sockets,
            "threads": self.threads,
        }


def session_pids(sid: int) -> list[int]:
    return list(session_stats(sid) or {})


def footprint(pids: Iterable[int]) -> Footprint:
    f = Footprint()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # it ended meanwhile
            continue
        links = []
        for fd in fds:
            # A descriptor closed since the listing (the listing's own, for this process).
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        f.processes += 1
        f.rss_kb += int(fields.get("VmRSS", "0 kB").split()[0])
        f.threads += int(fields.get("Threads", "0"))
        f.fds += len(links)
        f.sockets += sum(link.startswith("socket:") for link in links)
    return f


class ServiceLog:
    """The service's log file, read on from where the last look stopped: error lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.total: Counter[str] = Counter()

    def errors(self) -> Counter[str]:
        """``level error`` or ``critical`` lines since the last call, by their ``event``."""
        found: Counter[str] = Counter()
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        except OSError:
            return found
        end = data.rfind(b"\n") + 1  # a line being written waits for the next look
        self.offset += end
        for line in data[:end].splitlines():
            if LEVEL_ALARM.search(line):
                try:
                    found[str(json.loads(line).get("event"))] += 1
                except ValueError:
                    found["(not JSON)"] += 1
        self.total.update(found)
        return found


@dataclass
class Watched:
    service: Child
    service_log: ServiceLog
    data_dir: Path | None
    database: Child | None = None


# --- samples ----------------------------------------------------------------------------


def op_figures(latencies: dict[str, array.array[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for op in sorted(latencies):
        values = sorted(latencies[op])
        out[op] = {
            "count": len(values),
            "p50_ms": round(percentile(values, 50), 2),
            "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(values[-1], 2),
        }
    return out


def store_bytes(data_dir: Path | None) -> int | None:
    if data_dir is None:
        return None
    return sum(p.stat().st_size for p in data_dir.glob(DATABASE_FILE + "*") if p.is_file())


@dataclass
class Sampler:
    """Takes the samples: the processes' figures and the traffic's interval."""

    watched: Watched
    traffic: Traffic
    out: TextIO
    samples: list[dict[str, Any]] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    """Each sample's interval with its raw latencies, for the summary's windows."""
    _t0: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _cpu: tuple[float | None, float | None, float] = (None, None, 0.0)

    def start(self, phase_t0: float) -> None:
        self._t0 = self._last = phase_t0
        self.watched.service_log.errors()  # set-up's lines are not the phase's
        self._cpu = self._cpu_now()
        self.traffic.rotate()

    def _cpu_now(self) -> tuple[float | None, float | None, float]:
        db = self.watched.database
        return (
            session_cpu_seconds(self.watched.service.process.pid),
            session_cpu_seconds(db.process.pid) if db else None,
            time.process_time(),
        )

    def since_last(self) -> float:
        return time.monotonic() - self._last

    def take(self, phase: str) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = max(now - self._last, 1e-9)
        interval = self.traffic.rotate()
        cpu = self._cpu_now()
        service = footprint(session_pids(self.watched.service.process.pid))
        own = footprint([os.getpid()])

        def pct(i: int) -> float | None:
            before, after = self._cpu[i], cpu[i]
            if before is None or after is None:
                return None
            return round(100 * (after - before) / elapsed, 1)

        ops = op_figures(interval.latencies_ms)
        sample: dict[str, Any] = {
            "kind": "sample",
            "phase": phase,
            "t_s": round(now - self._t0, 1),
            "interval_s": round(elapsed, 1),
            "service": {**service.as_json(), "cpu_pct": pct(0)},
            "fds_beyond_connections": service.fds - own.sockets,
            "generator": {"rss_kb": own.rss_kb, "sockets": own.sockets, "cpu_pct": pct(2)},
            "ops_per_s": round(sum(o["count"] for o in ops.values()) / elapsed, 1),
            "ops": ops,
            "errors": dict(interval.errors),
            "substituted": dict(interval.substituted),
            "lag_max_ms": round(interval.lag_max_ms, 1),
            "in_flight_max": interval.in_flight_max,
            "service_log_errors": dict(self.watched.service_log.errors()),
            "store_bytes": store_bytes(self.watched.data_dir),
            "live_credentials": self.traffic.live_credentials,
            "revoked_credentials": len(self.traffic.revoked),
        }
        if self.watched.database is not None:
            db = footprint(session_pids(self.watched.database.process.pid))
            sample["database"] = {**db.as_json(), "cpu_pct": pct(1)}
        self._last, self._cpu = now, cpu
        self.samples.append(sample)
        self.intervals.append(interval)
        write_json_line(self.out, sample)
        print(sample_line(sample), flush=True)
        return sample

    async def every(self, phase: str, seconds: float, stop: asyncio.Event) -> None:
        """A sample each ``seconds`` until ``stop``."""
        k = 1
        while True:
            with contextlib.suppress(TimeoutError):
                delay = self._t0 + k * seconds - time.monotonic()
                await asyncio.wait_for(stop.wait(), max(0.0, delay))
            if stop.is_set():
                return
            self.take(phase)
            k += 1


def sample_line(s: dict[str, Any]) -> str:
    service = s["service"]
    ops = s["ops"]
    worst = max(ops.items(), key=lambda kv: kv[1]["p99_ms"], default=None)
    worst_text = f"worst p99 {worst[0]} {worst[1]['p99_ms']:.1f} ms" if worst else "no ops"
    maximum = max((o["max_ms"] for o in ops.values()), default=0.0)
    cpu = service["cpu_pct"]
    gen = s["generator"]["cpu_pct"]
    return (
        f"[{s['phase']:<8}{s['t_s']:>7.0f}s] rss {service['rss_kb'] / 1024:7.1f} MB  "
        f"fds {service['fds']:>4} ({s['fds_beyond_connections']:>3} beyond conns)  "
        f"threads {service['threads']:>3}  cpu {cpu if cpu is not None else 'n/a':>5}%  "
        f"gen {gen:>5}%  {s['ops_per_s']:>7.1f} ops/s  {worst_text}  max {maximum:.0f} ms  "
        f"lag {s['lag_max_ms']:.0f} ms  errors {sum(s['errors'].values())}  "
        f"log errors {sum(s['service_log_errors'].values())}"
        + (f"  db rss {s['database']['rss_kb'] / 1024:.1f} MB" if "database" in s else "")
    )


def write_json_line(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    out.flush()
