"""Report a benchmark run: markdown, a chart and JSON under bench/results/, and the README's
section generated from that JSON.

Everything renders from the JSON form of the results (`to_json`), so that README.md's figures
are regenerated from bench/results/latest.json (`invoke bench-readme`) with the same code that
wrote latest.md, and none of them is typed by hand.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .. import project
from . import cost
from .results import BenchFailed, Groups, Results, load_groups, shown, signing_overhead

README_BEGIN = (
    "<!-- bench:begin: generated from bench/results/latest.json by `invoke bench-readme`; do not edit -->"
)
README_END = "<!-- bench:end -->"
Data = dict[str, Any]


def results_dir() -> Path:
    return project.root() / "bench" / "results"


# --- the JSON form --------------------------------------------------------------------------


def to_json(res: Results) -> Data:
    data: Data = {
        "started": res.started, "seconds": res.seconds, "source": res.source, "machine": res.machine,
        "figures": [f.to_dict() for f in res.figures], "load": res.load,
    }  # fmt: skip
    data["signing_overhead"] = signing_overhead(res.load) if res.load else []
    data["cost_per_message_ms"] = cost_summary(res.load)
    data["capacity"] = capacity(res.load)
    return data


def _cost_groups(load: list[dict[str, Any]]) -> Groups:
    """Load groups with a cost measurement, smtp-sink first (what the throughput figures use)."""
    groups = {k: v for k, v in load_groups(load).items() if all("cpu_ms_per_message" in r for r in v)}
    return dict(
        sorted(groups.items(), key=lambda kv: (kv[0][0] != "smtp-sink", kv[0][0], kv[0][1], not kv[0][2]))
    )


def cost_summary(load: list[dict[str, Any]]) -> list[Data]:
    """CPU ms per delivered message by component, each with the samples of its repeated runs."""
    out = []
    for (mx, conc, signing), rows in _cost_groups(load).items():
        comps = {c: [r["cpu_ms_per_message"].get(c, 0.0) for r in rows] for c in cost.COMPONENTS}
        relay = [cost.relay_with_logging_ms(r["cpu_ms_per_message"]) for r in rows]
        total = [sum(r["cpu_ms_per_message"].values()) for r in rows]
        out.append({"mx": mx, "concurrency": conc, "signing": signing, "runs": len(rows), "components": comps,
                    "relay_with_logging": relay, "all": total})  # fmt: skip
    return out


def capacity(load: list[dict[str, Any]], mx: str = "smtp-sink") -> list[Data]:
    """Signed messages per second per core for the relay with its logging, by concurrency."""
    return [
        {"concurrency": conc, "mx": mx,
         "per_core": [cost.per_core(cost.relay_with_logging_ms(r["cpu_ms_per_message"])) for r in rows]}
        for (m, conc, signing), rows in _cost_groups(load).items() if m == mx and signing
    ]  # fmt: skip


# --- markdown -------------------------------------------------------------------------------


def _source_line(data: Data) -> str:
    src = data.get("source") or {}
    commit = str(src.get("commit") or "")
    if not commit:
        return "The commit measured was not recorded."
    state = "with uncommitted changes" if src.get("dirty") else "clean work tree"
    return f"Measured at commit `{commit[:12]}` ({state})."


#: Decimal places a figure is shown with, by unit (3 otherwise).
DIGITS = {"count": 0, "MB": 1, "% of a core": 2, "msg/s": 0}


def _figure_rows(data: Data) -> list[str]:
    lines = ["| figure | unit | measured | target | met | note |", "|---|---|---|---|---|---|"]
    for f in data["figures"]:
        met = "" if f.get("met") is None else ("yes" if f["met"] else "**no**")
        value = shown(f["samples"], DIGITS.get(f["unit"], 3))
        lines.append(
            f"| {f['name']} | {f['unit']} | {value} | {f.get('target', '')} | {met} | {f.get('note', '')} |"
        )
    return lines


def _med(rows: list[Data], key: str, digits: int = 0) -> str:
    return shown([float(r[key]) for r in rows], digits)


def _load_rows(data: Data) -> list[str]:
    groups = load_groups(data["load"])
    if not groups:
        return []
    first = next(iter(groups.values()))[0]
    lines = [
        f"## Load: {first['messages']} messages per run from the app (10.5.5.100), STARTTLS, to an MX",
        "",
        "A fresh relay for each run, as the image ships it. delivered/s runs from the first submission to "
        "the last `status=sent` line.",
        "",
        "| concurrency | DKIM signing | MX | delivered/s | accepted/s | p50 submit ms | p99 submit ms "
        "| lost | signed |",
        "|---:|---|---|---|---|---|---|---:|---:|",
    ]  # fmt: skip
    for (mx, conc, signing), rows in groups.items():
        lost = sum(r["lost"] for r in rows)
        signed = sum(r.get("signed") or 0 for r in rows)
        lines.append(
            f"| {conc} | {'on' if signing else 'off'} | {mx} | {_med(rows, 'delivered_per_s')} | "
            f"{_med(rows, 'accepted_per_s')} | {_med(rows, 'p50_latency_ms')} | "
            f"{_med(rows, 'p99_latency_ms')} | "
            f"{lost} | {signed} of {sum(r['accepted'] for r in rows)} |"
        )
    lines += ["", "Signing overhead (median delivered/s without signing / with signing; target <= 1.3x):", ""]
    for mx in sorted({m for (m, _, _) in groups}):
        for conc, ratio in signing_overhead(data["load"], mx):
            lines.append(
                f"- {mx}, concurrency {conc}: {ratio:.2f}x ({'met' if ratio <= 1.3 else '**missed**'})"
            )
    return lines


def _conns(n: int) -> str:
    return f"{n} connection{'' if n == 1 else 's'}"


def _cost_label(g: Data) -> str:
    return f"{g['concurrency']} conn., {'signed' if g['signing'] else 'unsigned'}"


def cost_rows(data: Data, mx: str = "smtp-sink") -> list[str]:
    """The cost table: CPU ms per delivered message, one column per load group on `mx`."""
    groups = [g for g in data.get("cost_per_message_ms") or [] if g["mx"] == mx]
    if not groups:
        return []
    lines = [
        "| CPU ms per delivered message | " + " | ".join(_cost_label(g) for g in groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    for comp in cost.COMPONENTS:
        lines.append(f"| {comp} | " + " | ".join(shown(g["components"][comp], 2) for g in groups) + " |")
    lines.append("| **relay with its logging** (relay + engine) | "
                 + " | ".join(f"**{shown(g['relay_with_logging'], 2)}**" for g in groups) + " |")  # fmt: skip
    lines.append("| all of the above | " + " | ".join(shown(g["all"], 2) for g in groups) + " |")
    return lines


def capacity_lines(data: Data) -> list[str]:
    caps = data.get("capacity") or []
    if not caps:
        return []
    parts = [f"{shown(c['per_core'], 0)} at {_conns(c['concurrency'])}" for c in caps]
    return [
        "**Capacity: signed messages per second per core** for the relay with its logging (the relay's "
        "cgroup and the engine's log handling; 1000 / its ms per message), at the settings the image "
        f"ships: {'; '.join(parts)}.",
    ]


COST_METHOD = """\
How it is measured, over each load run (`smtp_out.bench.cost`): the relay's processes share one
cgroup; its total is `cpuacct.usage` (cgroup v1), split by process from `/proc/<pid>/stat`
(utime + stime; single-threaded processes to the nanosecond from `/proc/<pid>/schedstat`) of the
processes in it at the start and end of the run. smtpd and cleanup processes exit during a run;
their CPU is in their parent's (Postfix's master) cutime + cstime once reaped, and counts as
Postfix's. What the split does not reach (a `docker exec` such as the healthcheck's, tick
rounding) is "unattributed". The engine's log handling is the CPU of dockerd, containerd and the
relay's containerd-shim on the host (children included), the one `docker exec` that starts the
client among it; the client and the sink are their containers' `cpuacct.usage`. Each source's
idle rate, measured over 2 s before the run with the relay up and healthy, is taken off; the
healthcheck's runs make that rate lumpy, so a component near zero can come out slightly negative.
The MX is Postfix's smtp-sink, which offers no STARTTLS: deliveries to an MX that offers it cost
the relay a TLS handshake more per connection. The client is Python's smtplib."""


def render_markdown(data: Data) -> str:
    m = data["machine"]
    lines = [
        "# smtp-out benchmarks",
        "",
        f"Run {data['started']} in {data['seconds']:.0f} s on {m['cpus']} CPUs ({m['cpu']}), {m['memory']}, "
        f"kernel {m['kernel']}, Docker Engine {m['docker_engine']}, Python {m['python']}. "
        + _source_line(data),
        "A figure measured once is shown once; repeated runs as median (min-max, number of runs). "
        "Ratios are measured within this run.",
        "",
        *_figure_rows(data),
    ]
    if data.get("load"):
        lines += ["", *_load_rows(data)]
    if data.get("cost_per_message_ms"):
        lines += ["", "## What one message costs", "", *cost_rows(data), "", *capacity_lines(data), "",
                  COST_METHOD]  # fmt: skip
        other = [g for g in data["cost_per_message_ms"] if g["mx"] != "smtp-sink"]
        for mx in sorted({g["mx"] for g in other}):
            lines += ["", f"With the {mx} MX (it stores and checks every message):", "", *cost_rows(data, mx)]
    lines += ["", "![chart](latest.png)", ""]
    return "\n".join(lines)


def readme_section(data: Data) -> str:
    """README.md's generated benchmark section (between README_BEGIN and README_END)."""
    m = data["machine"]
    lines = [
        README_BEGIN,
        "",
        f"From [bench/results/latest.json](bench/results/latest.json): run {data['started']} on {m['cpus']} "
        f"CPUs ({m['cpu']}), Docker Engine {m['docker_engine']}. {_source_line(data)} A figure measured once "
        "is shown once; repeated runs as median (min-max, number of runs). Load tables, the chart and how "
        "each figure is taken: [bench/results/latest.md](bench/results/latest.md).",
        "",
        *_figure_rows(data),
    ]
    if data.get("load"):
        ratios = ", ".join(f"{ratio:.2f}x at {_conns(conc)}" for conc, ratio in data["signing_overhead"])
        lines += [
            "",
            f"Signing overhead (median delivered/s without / with signing; target <= 1.3x): {ratios}.",
        ]
    if data.get("cost_per_message_ms"):
        lines += ["", *cost_rows(data), "", *capacity_lines(data)]
    lines += ["", README_END]
    return "\n".join(lines)


def replace_section(readme: str, section: str) -> str:
    """`readme` with the text between the markers (markers included) replaced by `section`."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise BenchFailed(f"README.md has no generated bench section: put {README_BEGIN} and {README_END} "
                          "where it goes")  # fmt: skip
    return readme[:start] + section + readme[end + len(README_END) :]


def update_readme(json_path: Path | None = None, readme: Path | None = None) -> Path:
    """Regenerate README.md's bench section from bench/results/latest.json."""
    json_path = json_path or results_dir() / "latest.json"
    readme = readme or project.root() / "README.md"
    if not json_path.is_file():
        raise BenchFailed(f"{json_path}: no bench results; run `invoke bench` first")
    readme.write_text(replace_section(readme.read_text(), readme_section(json.loads(json_path.read_text()))))
    return readme


# --- the chart ------------------------------------------------------------------------------

COLOURS = ("#4477aa", "#66ccee", "#228833", "#ccbb44", "#bbbbbb", "#ee6677", "#aa3377", "#888888")


def render_chart(data: Data, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(22, 6.5), squeeze=False)
    _timings(axes[0][0], data)
    _load_chart(axes[0][1], data)
    _cost_chart(axes[0][2], data)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _timings(ax: Any, data: Data) -> None:
    timing = [f for f in data["figures"] if f["unit"] == "s"]
    med = [statistics.median(f["samples"]) for f in timing]
    err = [[m - min(f["samples"]) for f, m in zip(timing, med, strict=True)],
           [max(f["samples"]) - m for f, m in zip(timing, med, strict=True)]]  # fmt: skip
    ax.barh([f["name"] for f in timing], med, xerr=err, color="#4477aa", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (median; whiskers min-max where repeated; log scale)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("smtp-out timings")


def _load_chart(ax: Any, data: Data) -> None:
    groups = {k: v for k, v in load_groups(data["load"]).items() if k[0] == "smtp-sink"}
    if not groups:
        ax.set_axis_off()
        return
    concs = sorted({c for (_, c, _) in groups})
    for signing, color in ((True, "#228833"), (False, "#bbbbbb")):
        pts = [(c, [r["delivered_per_s"] for r in groups[("smtp-sink", c, signing)]])
               for c in concs if ("smtp-sink", c, signing) in groups]  # fmt: skip
        xs = [c for c, _ in pts]
        med = [statistics.median(v) for _, v in pts]
        err = [[m - min(v) for (_, v), m in zip(pts, med, strict=True)],
               [max(v) - m for (_, v), m in zip(pts, med, strict=True)]]  # fmt: skip
        label = "signed" if signing else "milter off"
        ax.errorbar(xs, med, yerr=err, marker="o", color=color, capsize=3, label=f"delivered/s, {label}")
    ax.axhline(250, color="#cc3311", ls=":", label="target 250/s signed at 16")
    ax.set_xscale("log", base=2)
    ax.set_xticks(concs, [str(c) for c in concs])
    ax.set_xlabel("concurrent client connections")
    ax.set_ylabel("messages per second (median, min-max)")
    first = next(iter(groups.values()))[0]
    ax.set_title(f"load: {first['messages']} messages per run, smtp-sink MX")
    ax.legend(fontsize=8)


def _cost_chart(ax: Any, data: Data) -> None:
    groups = [g for g in data.get("cost_per_message_ms") or [] if g["mx"] == "smtp-sink"]
    if not groups:
        ax.set_axis_off()
        return
    labels = [_cost_label(g) for g in groups]
    bottom = [0.0] * len(groups)
    for comp, colour in zip(cost.COMPONENTS, COLOURS, strict=True):
        vals = [max(0.0, statistics.median(g["components"][comp])) for g in groups]
        ax.bar(labels, vals, bottom=bottom, color=colour, label=comp)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("CPU ms per delivered message (median of runs)")
    ax.set_title("what one message costs, by component (smtp-sink MX)")
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    ax.legend(fontsize=8)


def write(res: Results, out_dir: Path | None = None) -> dict[str, Path]:
    out_dir = out_dir or results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "latest.md", "json": out_dir / "latest.json", "png": out_dir / "latest.png"}
    data = to_json(res)
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    paths["md"].write_text(render_markdown(data))
    render_chart(data, paths["png"])
    return paths
