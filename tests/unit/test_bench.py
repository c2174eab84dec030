"""The benchmark's pure parts: /proc and cgroup parsing, the CPU attribution, the statistics rule
(one sample shown once) and the README section generated from the results."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from smtp_out import project
from smtp_out.bench import cost, report
from smtp_out.bench.load import docker_time, memory_figures
from smtp_out.bench.results import BenchFailed, Figure, Results, shown, signing_overhead

TICK = cost.TICK


def stat_line(pid: int, comm: str, ppid: int, start: int, utime: int, *, stime: int = 0, cutime: int = 0,
              cstime: int = 0) -> str:  # fmt: skip
    """A /proc/<pid>/stat line as the kernel writes it (52 fields)."""
    fields = ["S", ppid, pid, pid, 0, -1, 4194560, 100, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0,
              start, 3133440, 406] + [0] * 30  # fmt: skip
    return f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n"


def snap(at: float, usage_s: float, *procs: str) -> cost.CgroupSnapshot:
    stats = [cost.parse_stat(p) for p in procs]
    return cost.CgroupSnapshot(at, round(usage_s * 1e9), {s.key: s for s in stats})


# --- /proc and cgroup files -------------------------------------------------------------------


def test_parse_stat_reads_the_cpu_fields_and_a_name_with_spaces_and_parentheses() -> None:
    s = cost.parse_stat(stat_line(4242, "trivial-re) (x", 1, 5000, utime=30, stime=12, cutime=7, cstime=3))
    assert (s.pid, s.comm, s.ppid, s.starttime, s.threads) == (4242, "trivial-re) (x", 1, 5000, 1)
    assert (s.own, s.children) == (42 * 10**9 // TICK, 10 * 10**9 // TICK)  # ns


def test_a_single_threaded_process_is_read_to_the_nanosecond_from_schedstat(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text(stat_line(7, "smtpd", 1, 100, utime=1, cutime=2))
    (tmp_path / "7" / "schedstat").write_text("12345678 999 4\n")
    s = cost.read_stat(7, tmp_path)
    assert s is not None
    assert (s.own, s.children) == (12_345_678, 2 * 10**9 // TICK)
    assert cost.read_stat(8, tmp_path) is None  # gone


def test_parse_stat_reads_a_real_line() -> None:
    line = Path("/proc/self/stat").read_text()
    s = cost.parse_stat(line)
    assert s.pid == os.getpid()
    assert s.comm.startswith(("python", "pytest"))


def test_parse_stat_refuses_what_is_not_a_stat_line() -> None:
    with pytest.raises(ValueError, match="not a /proc"):
        cost.parse_stat("garbage")


MEMORY_STAT = """cache 1310720
rss 14360576
rss_huge 0
mapped_file 0
hierarchical_memory_limit 9223372036854771712
total_cache 2621440
total_rss 28721152
total_inactive_file 1310720
"""


def fake_host(tmp_path: Path, cid: str, procs: dict[int, str], usage_ns: int) -> tuple[Path, Path]:
    """A cgroup v1 tree (cgroupfs driver) and a /proc with the given processes."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    cpu = root / "cpuacct" / "docker" / cid
    cpu.mkdir(parents=True)
    (cpu / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in procs) + "999\n")  # 999: gone
    (cpu / "cpuacct.usage").write_text(f"{usage_ns}\n")
    mem = root / "memory" / "docker" / cid
    mem.mkdir(parents=True)
    (mem / "memory.stat").write_text(MEMORY_STAT)
    (mem / "memory.usage_in_bytes").write_text("40000000\n")
    (mem / "memory.max_usage_in_bytes").write_text("183140000\n")
    (mem / "memory.kmem.max_usage_in_bytes").write_text("20000000\n")
    for pid, line in procs.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(line)
    return root, proc


def test_snapshot_cgroup_reads_the_counter_and_the_processes_and_skips_those_gone(tmp_path: Path) -> None:
    procs = {10: stat_line(10, "master", 1, 100, 5), 11: stat_line(11, "opendkim", 1, 101, 7)}
    root, proc = fake_host(tmp_path, "abc", procs, 123_000_000)
    s = cost.snapshot_cgroup("abc", root, proc)
    assert s.usage_ns == 123_000_000
    assert sorted(p.comm for p in s.procs.values()) == ["master", "opendkim"]


def test_read_memory_splits_page_cache_from_the_processes_memory(tmp_path: Path) -> None:
    root, _ = fake_host(tmp_path, "abc", {}, 0)
    m = cost.read_memory("abc", root)
    assert (m["total_rss"], m["total_cache"]) == (28721152, 2621440)
    assert (m["usage_in_bytes"], m["max_usage_in_bytes"]) == (40_000_000, 183_140_000)


def test_reset_peak_writes_zero_to_max_usage(tmp_path: Path) -> None:
    root, _ = fake_host(tmp_path, "abc", {}, 0)
    cost.reset_peak("abc", root)
    assert (root / "memory/docker/abc/memory.max_usage_in_bytes").read_text().strip() == "0"
    assert (root / "memory/docker/abc/memory.kmem.max_usage_in_bytes").read_text().strip() == "0"


def test_cgroup_v2_is_refused_with_what_v2_would_read(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    with pytest.raises(BenchFailed, match=r"cgroup v2.*memory\.peak.*anon/file"):
        cost.cgroup_dir("memory", "abc", tmp_path)


def test_a_missing_cgroup_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(BenchFailed, match="engine's host, as root"):
        cost.cgroup_dir("cpuacct", "abc", tmp_path)


def test_engine_pids_are_the_daemons_and_the_relays_shim(tmp_path: Path) -> None:
    procs = {
        7622: stat_line(7622, "dockerd", 1, 10, 0),
        7638: stat_line(7638, "containerd", 1, 11, 0),
        8637: stat_line(8637, "containerd-shim", 1, 12, 0),
        8700: stat_line(8700, "containerd-shim", 1, 13, 0),
        8800: stat_line(8800, "tini", 8700, 14, 0),
    }
    _, proc = fake_host(tmp_path, "abc", procs, 0)
    assert cost.engine_pids(8800, proc) == [7622, 7638, 8700]


# --- attribution ------------------------------------------------------------------------------


def test_attribution_counts_children_reaped_by_master_for_postfix_and_takes_their_past_off() -> None:
    t = TICK  # one second of CPU, in ticks
    start = snap(
        0.0, 10.0,
        stat_line(1, "master", 0, 100, utime=1 * t, cutime=2 * t),
        stat_line(20, "smtpd", 1, 200, utime=1 * t),  # alive at the start, exits in the window
        stat_line(30, "opendkim", 1, 110, utime=3 * t),
        stat_line(31, "syslogd", 1, 105, utime=t // 2),
    )  # fmt: skip
    end = snap(
        5.0, 20.0,
        # master: +1 s own; +4 s reaped: the smtpd above (1 s before, 1 s in the window) and 2 s
        # of children born and reaped in the window
        stat_line(1, "master", 0, 100, utime=2 * t, cutime=6 * t),
        stat_line(40, "cleanup", 1, 300, utime=t),  # born in the window, alive at the end
        stat_line(30, "opendkim", 1, 110, utime=5 * t),
        stat_line(31, "syslogd", 1, 105, utime=t),
    )  # fmt: skip
    got = cost.attribute(start, end, cost.relay_component)
    assert got[cost.RELAY_POSTFIX] == pytest.approx(1 + 4 - 1 + 1)  # master, reaped less the past, cleanup
    assert got[cost.RELAY_OPENDKIM] == pytest.approx(2)
    assert got[cost.RELAY_SYSLOG] == pytest.approx(0.5)
    # the cgroup spent 10 s; what /proc does not explain (an exec'd process, say) is shown apart
    assert got[cost.RELAY_UNATTRIBUTED] == pytest.approx(10 - 5 - 2 - 0.5)
    assert sum(got.values()) == pytest.approx(10)


def test_a_reused_pid_is_a_new_process() -> None:
    t = TICK
    start = snap(0.0, 0.0, stat_line(1, "master", 0, 100, 0), stat_line(50, "smtpd", 1, 200, utime=3 * t))
    end = snap(
        1.0, 1.5, stat_line(1, "master", 0, 100, 0, cutime=3 * t), stat_line(50, "smtpd", 1, 900, t // 2)
    )
    got = cost.attribute(start, end, cost.relay_component)
    # the old smtpd's 3 s were all before the window; the new one (same pid) spent 0.5 s
    assert got[cost.RELAY_POSTFIX] == pytest.approx(0.5)
    assert got[cost.RELAY_UNATTRIBUTED] == pytest.approx(1.0)


def test_a_grandchild_that_exited_has_its_past_taken_off_the_surviving_ancestor() -> None:
    t = TICK
    start = snap(
        0.0, 0.0,
        stat_line(1, "master", 0, 100, 0),
        stat_line(20, "smtpd", 1, 200, utime=t),
        stat_line(21, "cleanup", 20, 201, utime=2 * t),
    )  # fmt: skip
    # both exited; master's cutime got smtpd's total, which includes the cleanup it reaped
    end = snap(1.0, 1.0, stat_line(1, "master", 0, 100, 0, cutime=4 * t))
    assert cost.attribute(start, end, cost.relay_component)[cost.RELAY_POSTFIX] == pytest.approx(1.0)


def test_net_of_idle_takes_the_idle_rate_off_in_proportion_and_per_message() -> None:
    run = {"a": 3.0, "b": 1.0}
    net = cost.net_of_idle(run, run_seconds=10.0, idle={"a": 0.1}, idle_seconds=2.0)
    assert net == pytest.approx({"a": 2.5, "b": 1.0})
    assert cost.per_message_ms(net, 1000) == pytest.approx({"a": 2.5, "b": 1.0})
    assert cost.per_message_ms(net, 0) == {}


def test_capacity_is_one_core_over_the_relay_and_its_logging() -> None:
    ms = {cost.RELAY_POSTFIX: 2.0, cost.RELAY_OPENDKIM: 1.5, cost.RELAY_SYSLOG: 0.25, cost.RELAY_OTHER: 0.0,
          cost.RELAY_UNATTRIBUTED: 0.05, cost.ENGINE: 1.2, cost.CLIENT: 0.9, cost.SINK: 0.4}  # fmt: skip
    assert cost.relay_with_logging_ms(ms) == pytest.approx(5.0)  # the client and the sink are not the relay's
    assert cost.per_core(5.0) == pytest.approx(200.0)
    assert cost.per_core(0.0) == 0.0


def test_components_by_process_name() -> None:
    assert {cost.relay_component(n) for n in ("master", "smtpd", "cleanup", "qmgr", "smtp", "tlsmgr")} == {
        cost.RELAY_POSTFIX
    }
    assert cost.relay_component("opendkim") == cost.RELAY_OPENDKIM
    assert cost.relay_component("syslogd") == cost.RELAY_SYSLOG
    assert cost.relay_component("healthcheck") == cost.RELAY_OTHER


# --- statistics: one sample is shown once --------------------------------------------------------


def test_one_sample_is_shown_once_and_several_with_their_spread() -> None:
    assert shown([183.14]) == "183.140"
    assert shown([0.42, 0.40, 0.45], 2) == "0.42 (0.40-0.45, 3 runs)"
    assert shown([]) == "-"


def test_a_figure_measured_once_has_no_min_or_max() -> None:
    once = Figure("burst", "s", [37.8]).to_dict()
    assert once["runs"] == 1 and "min" not in once and "max" not in once
    thrice = Figure("banner", "s", [0.4, 0.5, 0.6]).to_dict()
    assert (thrice["min"], thrice["median"], thrice["max"], thrice["runs"]) == (0.4, 0.5, 0.6, 3)


def row(conc: int, signing: bool, per_s: float, mx: str = "smtp-sink", ms: float = 5.0) -> dict[str, object]:
    comps = dict.fromkeys(cost.COMPONENTS, 0.0)
    comps.update({cost.RELAY_POSTFIX: ms - 1, cost.ENGINE: 1.0, cost.CLIENT: 0.5})
    return {"run": "load", "messages": 300, "concurrency": conc, "signing": signing, "mx": mx,
            "accepted": 300, "accepted_per_s": per_s, "delivered_per_s": per_s, "p50_latency_ms": 4.0,
            "p99_latency_ms": 9.0, "lost": 0, "signed": 300 if signing else 0,
            "cpu_ms_per_message": comps}  # fmt: skip


LOAD = [row(16, True, p, ms=m) for p, m in ((300, 5.0), (290, 5.2), (310, 4.8))] + [
    row(16, False, p, ms=3.0) for p in (450, 440, 460)
]


def test_signing_overhead_is_a_ratio_of_medians() -> None:
    [(conc, ratio)] = signing_overhead(LOAD)
    assert conc == 16
    assert ratio == pytest.approx(450 / 300)


def results_data() -> dict[str, object]:
    res = Results({"cpus": "2", "cpu": "AMD EPYC", "memory": "23.5 GiB", "kernel": "6.1", "os": "Linux",
                   "python": "3.11.7", "docker_engine": "20.10.24"}, started="2026-12-01 15:00 UTC",
                  source={"commit": "0123456789abcdef", "dirty": False})  # fmt: skip
    res.figures = [Figure("docker run -> 220 banner on 587", "s", [0.41, 0.42, 0.43], target="<= 0.5 s",
                          met=True),
                   Figure("burst: relay memory: peak, page cache included", "MB", [183.14])]  # fmt: skip
    res.load = list(LOAD)
    return report.to_json(res)


def test_markdown_shows_a_single_sample_once_and_the_cost_table_and_capacity() -> None:
    md = report.render_markdown(results_data())
    burst = next(ln for ln in md.splitlines() if ln.startswith("| burst"))
    assert burst.count("183.1") == 1 and "runs" not in burst
    assert "| docker run -> 220 banner on 587 | s | 0.420 (0.410-0.430, 3 runs) |" in md
    assert "| **relay with its logging** (relay + engine) | **5.00 (4.80-5.20, 3 runs)** | **3.00" in md
    # 1000 / 5.0 ms (the relay's 4 ms and the engine's 1 ms; not the client's)
    assert "signed messages per second per core" in md and "200 (192-208, 3 runs) at 16 connections" in md
    assert "Measured at commit `0123456789ab` (clean work tree)." in md


def test_chart_renders_the_cost_bars(tmp_path: Path) -> None:
    report.render_chart(results_data(), tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_figures_say_how_each_was_taken() -> None:
    mem = {"before": {"usage_in_bytes": 30e6, "total_rss": 20e6, "total_cache": 5e6},
           "after": {"max_usage_in_bytes": 90e6, "kmem_max_usage_in_bytes": 12e6},
           "sampled_peaks": {"total_rss": 40e6, "total_cache": 45e6},
           "samples": 160}  # fmt: skip
    figs = memory_figures({"messages": 10_000, "memory": mem})
    assert [f.samples for f in figs] == [[90.0], [40.0], [12.0], [45.0]]
    notes = " ".join(f.note for f in figs)
    for what in ("memory.max_usage_in_bytes, reset", "total_rss", "total_cache", "kmem", "memory.peak",
                 "memory.stat anon", "memory.stat file"):  # fmt: skip
        assert what in notes


def test_docker_timestamps_with_trimmed_nanoseconds() -> None:
    base = dt.datetime(2026, 12, 1, 14, 20, tzinfo=dt.UTC).timestamp()
    assert docker_time("2026-12-01T14:20:00.123456789Z") == pytest.approx(base + 0.123456, abs=1e-6)
    assert docker_time("2026-12-01T14:20:00.12Z") == pytest.approx(base + 0.12, abs=1e-6)
    assert docker_time("2026-12-01T14:20:00Z") == pytest.approx(base, abs=1e-6)


# --- the README's figures come from latest.json --------------------------------------------------


def test_readme_section_replaces_only_what_is_between_the_markers() -> None:
    text = f"intro\n{report.README_BEGIN}\nold figures\n{report.README_END}\nafter\n"
    out = report.replace_section(text, report.readme_section(results_data()))
    assert out.startswith("intro\n") and out.endswith("\nafter\n") and "old figures" not in out
    assert "0.420 (0.410-0.430, 3 runs)" in out and "Signing overhead" in out and "| client (app) |" in out
    with pytest.raises(BenchFailed, match="no generated bench section"):
        report.replace_section("no markers", "x")


def test_update_readme_writes_the_section_from_a_json_file(tmp_path: Path) -> None:
    (tmp_path / "latest.json").write_text(json.dumps(results_data()))
    (tmp_path / "README.md").write_text(f"a\n{report.README_BEGIN}\n{report.README_END}\nb\n")
    report.update_readme(tmp_path / "latest.json", tmp_path / "README.md")
    assert "0123456789ab" in (tmp_path / "README.md").read_text()
    with pytest.raises(BenchFailed, match="run `invoke bench` first"):
        report.update_readme(tmp_path / "none.json", tmp_path / "README.md")


def test_the_committed_readme_section_is_what_latest_json_renders() -> None:
    """No figure about the present is typed into README.md: its bench section is regenerated from
    bench/results/latest.json (`invoke bench` and `invoke bench-readme` write it)."""
    root = project.root()
    readme = (root / "README.md").read_text()
    data = json.loads((root / "bench" / "results" / "latest.json").read_text())
    start, end = readme.index(report.README_BEGIN), readme.index(report.README_END) + len(report.README_END)
    assert readme[start:end] == report.readme_section(data), "run `invoke bench-readme`"
