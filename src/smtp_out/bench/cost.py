"""What one message costs: CPU by component over a load run, and a container's memory, read on
the engine's host from /proc and the containers' cgroups (cgroup v1, as this engine runs).

The relay's processes share one cgroup. Its total over a window is the cgroup's own counter
(`cpuacct.usage`, nanoseconds, every process that ran in it, exited ones included). That total
is split by process from `/proc/<pid>/stat` (utime + stime, in clock ticks) of the processes in
the cgroup at the window's start and end; a single-threaded process (Postfix's daemons, syslogd)
is read to the nanosecond from `/proc/<pid>/schedstat` instead, since dozens of short-lived
processes each rounded to a tick would blur the split:

- a process alive at both ends counts its own growth; one born in the window counts all of it;
- processes that exited in the window (smtpd and cleanup children come and go) were reaped by
  their parent (Postfix's master): their CPU is in the parent's cutime + cstime, so the growth
  of those counts for the parent's component; a child that was already alive at the start
  brought its earlier CPU along, which is taken off again (its start figures, children
  included, from the nearest ancestor that survived);
- what is left of the cgroup's total (processes whose parent is outside the container, such as
  a `docker exec`, and tick rounding) is shown as unattributed.

The engine's share is read the same way from its processes on the host (dockerd, containerd and
the relay's containerd-shim, children included). Every source also has an idle rate, measured
over a window just before the run with the relay up and idle, which is taken off in proportion
to the run's length: what remains is what the messages cost.

Memory (cgroup v1): `memory.max_usage_in_bytes` is the kernel's peak of the cgroup's usage,
page cache included, since the cgroup was created or the file was last reset (writing 0 resets it
to the current usage). `memory.stat` splits usage into the processes' own memory (`total_rss`)
and page cache (`total_cache`); v1 has no peak of either, so they are sampled. On cgroup v2 the
same figures are `memory.peak` and `memory.stat`'s `anon` and `file`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .results import BenchFailed

TICK = os.sysconf("SC_CLK_TCK")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")

#: Postfix's daemons, by the name the kernel shows (comm).
POSTFIX = frozenset((
    "master", "smtpd", "smtp", "cleanup", "qmgr", "pickup", "tlsmgr", "anvil", "trivial-rewrite", "bounce",
    "proxymap", "scache", "postlogd", "showq", "flush", "verify", "error", "discard", "lmtp", "local",
    "postdrop", "sendmail", "postqueue", "postsuper",
))  # fmt: skip
#: Component names, in the order tables and charts show them.
RELAY_POSTFIX, RELAY_OPENDKIM, RELAY_SYSLOG = "relay: Postfix", "relay: OpenDKIM", "relay: syslogd"
RELAY_OTHER, RELAY_UNATTRIBUTED = "relay: other processes", "relay: unattributed"
ENGINE, CLIENT, SINK = "engine: log handling", "client (app)", "sink (MX)"
COMPONENTS = (RELAY_POSTFIX, RELAY_OPENDKIM, RELAY_SYSLOG, RELAY_OTHER, RELAY_UNATTRIBUTED, ENGINE,
              CLIENT, SINK)  # fmt: skip
RELAY_COMPONENTS = COMPONENTS[:5]
#: The engine's processes on the host (the shim is the relay's own, found by its init's parent).
ENGINE_DAEMONS = ("dockerd", "containerd")


def relay_component(comm: str) -> str:
    """The relay component a process belongs to, by its name."""
    if comm in POSTFIX:
        return RELAY_POSTFIX
    if comm == "opendkim":
        return RELAY_OPENDKIM
    if comm in ("syslogd", "busybox"):
        return RELAY_SYSLOG
    return RELAY_OTHER


# --- /proc ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat a CPU split needs; CPU in clock ticks."""

    pid: int
    comm: str
    ppid: int
    starttime: int
    own: int  # utime + stime, in ns (to the tick; to the ns when read from schedstat)
    children: int  # cutime + cstime in ns: reaped children (and theirs)
    threads: int = 1

    @property
    def key(self) -> tuple[int, int]:
        """The process's identity: a pid is reused, a (pid, start time) is not."""
        return (self.pid, self.starttime)


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The name is in parentheses and may contain spaces or ')'."""
    try:
        head, _, tail = text.rpartition(")")
        pid_s, _, comm = head.partition(" (")
        f = tail.split()
        return ProcStat(int(pid_s), comm, int(f[1]), int(f[19]), ticks_ns(int(f[11]) + int(f[12])),
                        ticks_ns(int(f[13]) + int(f[14])), int(f[17]))  # fmt: skip
    except (ValueError, IndexError) as e:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}") from e


def ticks_ns(ticks: int) -> int:
    return ticks * 10**9 // TICK


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """A process's stat, or None when it is gone; a single-threaded one's own CPU to the ns
    (schedstat's first field: the thread's run time)."""
    try:
        s = parse_stat((proc / str(pid) / "stat").read_text())
        if s.threads == 1:
            with contextlib.suppress(OSError, ValueError, IndexError):
                s = dataclasses.replace(s, own=int((proc / str(pid) / "schedstat").read_text().split()[0]))
        return s
    except (OSError, ValueError):
        return None


def pids_named(names: Iterable[str], proc: Path = PROC) -> list[int]:
    wanted = set(names)
    out = []
    for d in proc.glob("[0-9]*"):
        s = read_stat(int(d.name), proc)
        if s is not None and s.comm in wanted:
            out.append(s.pid)
    return sorted(out)


# --- cgroup v1 files -----------------------------------------------------------------------


def parse_kv(text: str) -> dict[str, int]:
    """A cgroup `key value` file (memory.stat, cpuacct.stat)."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def cgroup_dir(controller: str, container_id: str, root: Path = CGROUP_ROOT) -> Path:
    """A container's cgroup v1 directory for `controller` (cgroupfs or systemd driver)."""
    for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
        d = root / controller / rel
        if d.is_dir():
            return d
    if (root / "cgroup.controllers").exists():
        raise BenchFailed(
            "the engine runs cgroup v2; the cost benchmark reads cgroup v1 files "
            "(v2: cpu.stat usage_usec, memory.peak, memory.stat anon/file)"
        )
    raise BenchFailed(f"no cgroup for container {container_id[:12]} under {root}/{controller}: "
                      "run the bench on the engine's host, as root")  # fmt: skip


@dataclass
class CgroupSnapshot:
    """A container's processes and its cgroup's CPU counter at one moment."""

    at: float
    usage_ns: int
    procs: dict[tuple[int, int], ProcStat]


def snapshot_cgroup(container_id: str, root: Path = CGROUP_ROOT, proc: Path = PROC) -> CgroupSnapshot:
    d = cgroup_dir("cpuacct", container_id, root)
    at = time.monotonic()
    procs = {}
    for line in (d / "cgroup.procs").read_text().split():
        s = read_stat(int(line), proc)
        if s is not None:
            procs[s.key] = s
    return CgroupSnapshot(at, int((d / "cpuacct.usage").read_text()), procs)


def snapshot_pids(pids: Iterable[int], proc: Path = PROC) -> CgroupSnapshot:
    """Host processes (the engine's) as a snapshot; usage is their CPU, children included."""
    at = time.monotonic()
    procs = {s.key: s for p in pids if (s := read_stat(p, proc)) is not None}
    return CgroupSnapshot(at, sum(s.own + s.children for s in procs.values()), procs)


# --- attribution -----------------------------------------------------------------------------


def attribute(start: CgroupSnapshot, end: CgroupSnapshot, component: Callable[[str], str],
              unattributed: str = RELAY_UNATTRIBUTED) -> dict[str, float]:  # fmt: skip
    """CPU seconds by component between two snapshots of one cgroup (the method: module doc).

    The components add up to the cgroup's own total; the rest is `unattributed`."""
    ns: dict[str, int] = {}

    def add(comp: str, n: int) -> None:
        ns[comp] = ns.get(comp, 0) + n

    for key, p in end.procs.items():
        before = start.procs.get(key)
        own0, children0 = (before.own, before.children) if before else (0, 0)
        # its own growth, and that of the children it reaped (their component is the reaper's)
        add(component(p.comm), p.own - own0 + p.children - children0)
    by_pid = {p.pid: p for p in start.procs.values()}
    for key, p in start.procs.items():
        if key in end.procs:
            continue
        ancestor = _surviving_ancestor(p, by_pid, end)
        if ancestor is not None:  # its earlier CPU came along into the ancestor's cutime
            add(component(ancestor.comm), -(p.own + p.children))
    seconds = {k: v / 1e9 for k, v in ns.items()}
    total = (end.usage_ns - start.usage_ns) / 1e9
    seconds[unattributed] = total - sum(seconds.values())
    return seconds


def _surviving_ancestor(p: ProcStat, by_pid: Mapping[int, ProcStat], end: CgroupSnapshot) -> ProcStat | None:
    seen = set()
    cur = by_pid.get(p.ppid)
    while cur is not None and cur.pid not in seen:
        if cur.key in end.procs:
            return cur
        seen.add(cur.pid)
        cur = by_pid.get(cur.ppid)
    return None


def cpu_seconds(start: CgroupSnapshot, end: CgroupSnapshot) -> float:
    """A cgroup's (or a process set's) total CPU between two snapshots."""
    return (end.usage_ns - start.usage_ns) / 1e9


def net_of_idle(run: Mapping[str, float], run_seconds: float, idle: Mapping[str, float],
                idle_seconds: float) -> dict[str, float]:  # fmt: skip
    """Each component's CPU in the run less its idle rate over the run's length."""
    scale = run_seconds / idle_seconds if idle_seconds > 0 else 0.0
    return {k: v - idle.get(k, 0.0) * scale for k, v in run.items()}


def per_message_ms(seconds: Mapping[str, float], messages: int) -> dict[str, float]:
    return {k: 1000 * v / messages for k, v in seconds.items()} if messages else {}


def relay_with_logging_ms(ms: Mapping[str, float]) -> float:
    """What one message costs the relay's host: the relay's cgroup and the engine's log handling."""
    return sum(ms.get(k, 0.0) for k in (*RELAY_COMPONENTS, ENGINE))


def per_core(ms_per_message: float) -> float:
    """Messages per second one core sustains at `ms_per_message` of CPU each."""
    return 1000 / ms_per_message if ms_per_message > 0 else 0.0


# --- a load run's sources ---------------------------------------------------------------------


@dataclass
class Sources:
    """What a load run reads: the relay's cgroup, the engine's processes, the client's and the
    sink's cgroups."""

    relay_id: str
    engine_pids: list[int]
    client_id: str
    sink_id: str

    def snapshot(self) -> dict[str, CgroupSnapshot]:
        return {
            "relay": snapshot_cgroup(self.relay_id),
            "engine": snapshot_pids(self.engine_pids),
            "client": snapshot_cgroup(self.client_id),
            "sink": snapshot_cgroup(self.sink_id),
        }


def engine_pids(relay_init_pid: int, proc: Path = PROC) -> list[int]:
    """dockerd, containerd and the relay's containerd-shim (the parent of its init)."""
    shim = read_stat(relay_init_pid, proc)
    pids = pids_named(ENGINE_DAEMONS, proc)
    return sorted({*pids, shim.ppid} if shim else set(pids))


def window(start: Mapping[str, CgroupSnapshot], end: Mapping[str, CgroupSnapshot]) -> dict[str, float]:
    """CPU seconds by component between two snapshots of `Sources`."""
    out = attribute(start["relay"], end["relay"], relay_component)
    out[ENGINE] = cpu_seconds(start["engine"], end["engine"])
    out[CLIENT] = cpu_seconds(start["client"], end["client"])
    out[SINK] = cpu_seconds(start["sink"], end["sink"])
    return out


# --- memory ---------------------------------------------------------------------------------


def reset_peak(container_id: str, root: Path = CGROUP_ROOT) -> None:
    """cgroup v1: writing 0 to memory.max_usage_in_bytes (and the kernel memory's) sets the peak
    to the current usage."""
    d = cgroup_dir("memory", container_id, root)
    for name in ("memory.max_usage_in_bytes", "memory.kmem.max_usage_in_bytes"):
        if (d / name).exists():
            (d / name).write_text("0\n")


def read_memory(container_id: str, root: Path = CGROUP_ROOT) -> dict[str, int]:
    """usage, max_usage and memory.stat of a container's memory cgroup, in bytes."""
    d = cgroup_dir("memory", container_id, root)
    out = parse_kv((d / "memory.stat").read_text())
    out["usage_in_bytes"] = int((d / "memory.usage_in_bytes").read_text())
    out["max_usage_in_bytes"] = int((d / "memory.max_usage_in_bytes").read_text())
    kmem = d / "memory.kmem.max_usage_in_bytes"
    if kmem.exists():
        out["kmem_max_usage_in_bytes"] = int(kmem.read_text())
    return out


@dataclass
class MemorySampler:
    """Samples a container's memory.stat in a thread while the block runs; keeps the peak of
    each of `keys` (v1 keeps no peak of them itself)."""

    container_id: str
    interval: float = 0.25
    keys: tuple[str, ...] = ("total_rss", "total_cache")
    peaks: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        with contextlib.suppress(OSError, BenchFailed):
            m = read_memory(self.container_id)
            self.samples += 1
            for k in self.keys:
                self.peaks[k] = max(self.peaks.get(k, 0), m.get(k, 0))

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
