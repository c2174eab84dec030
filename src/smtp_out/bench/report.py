"""Report a benchmark run: markdown, a chart and JSON under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path

from .. import project
from .results import Results, signing_overhead


def results_dir() -> Path:
    return project.root() / "bench" / "results"


def render_markdown(res: Results) -> str:
    m = res.machine
    lines = [
        "# smtp-out benchmarks",
        "",
        f"Run {res.started} in {res.seconds:.0f} s on {m['cpus']} CPUs ({m['cpu']}), {m['memory']}, "
        f"kernel {m['kernel']}, Docker Engine {m['docker_engine']}, Python {m['python']}.",
        "Figures are min / median / max over repeated runs; ratios are measured within this run.",
        "",
        "| figure | unit | min | median | max | target | met | note |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for f in res.figures:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        cells = [f.name, f.unit, f"{f.min:.3f}", f"{f.median:.3f}", f"{f.max:.3f}", f.target, met, f.note]
        lines.append("| " + " | ".join(cells) + " |")
    if res.load:
        lines += _load_section(res)
    lines += ["", "![chart](latest.png)", ""]
    return "\n".join(lines)


def _load_section(res: Results) -> list[str]:
    rows = [r for r in res.load if r.get("run", "load") == "load"]
    lines = [
        "",
        f"## Load: {rows[0]['messages']} messages from the app (10.5.5.100), STARTTLS, to an MX",
        "",
        "| concurrency | DKIM signing | MX | accepted/s | delivered/s | p50 submit ms | p99 submit ms "
        "| lost | signed |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        signed = "-" if r.get("signed") is None else r["signed"]
        lines.append(
            f"| {r['concurrency']} | {'on' if r['signing'] else 'off'} | {r.get('mx', 'aiosmtpd')} | "
            f"{r['accepted_per_s']:.0f} | {r['delivered_per_s']:.0f} | {r['p50_latency_ms']:.0f} | "
            f"{r['p99_latency_ms']:.0f} | {r['lost']} | {signed} |"
        )
    lines += ["", "Signing overhead (delivered/s without signing / with signing, target <= 1.3x):", ""]
    for mx in sorted({r.get("mx", "aiosmtpd") for r in rows}):
        for conc, ratio in signing_overhead(rows, mx):
            lines.append(
                f"- {mx}, concurrency {conc}: {ratio:.2f}x ({'met' if ratio <= 1.3 else '**missed**'})"
            )
    top = max(r["concurrency"] for r in rows)
    best = max(
        r["delivered_per_s"]
        for r in rows
        if r["signing"] and r["concurrency"] == top and r["mx"] == "smtp-sink"
    )
    lost = sum(r["lost"] for r in res.load)
    verdict = "met" if best >= 250 else "**missed**"
    lines.append(
        f"- signed at {top} connections: {best:.0f}/s (target >= 250/s: {verdict}); lost in all runs: {lost}"
    )
    return lines


def render_chart(res: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = [f for f in res.figures if f.unit == "s"]
    fig, axes = plt.subplots(1, 2 if res.load else 1, figsize=(15, 6), squeeze=False)
    ax = axes[0][0]
    names = [f.name for f in timing]
    med = [f.median for f in timing]
    err = [[f.median - f.min for f in timing], [f.max - f.median for f in timing]]
    ax.barh(names, med, xerr=err, color="#4477aa", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (median, min-max whiskers, log scale)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("smtp-out timings")
    load = [r for r in res.load if r.get("run", "load") == "load" and r.get("mx") == "smtp-sink"]
    if load:
        ax2 = axes[0][1]
        concs = sorted({r["concurrency"] for r in load})
        for signing, color in ((True, "#228833"), (False, "#bbbbbb")):
            rows = [next(r for r in load if r["concurrency"] == c and r["signing"] == signing) for c in concs]
            label = "signed" if signing else "milter off"
            ax2.plot(
                concs,
                [r["delivered_per_s"] for r in rows],
                marker="o",
                color=color,
                label=f"delivered/s, {label}",
            )
            ax2.plot(
                concs,
                [r["accepted_per_s"] for r in rows],
                marker="s",
                ls="--",
                color=color,
                label=f"accepted/s, {label}",
            )
        ax2.axhline(250, color="#cc3311", ls=":", label="target 250/s signed at 16")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(concs, [str(c) for c in concs])
        ax2.set_xlabel("concurrent client connections")
        ax2.set_ylabel("messages per second")
        ax2.set_title(f"load: {load[0]['messages']} messages per run, smtp-sink MX")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res: Results, out_dir: Path | None = None) -> dict[str, Path]:
    out_dir = out_dir or results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "latest.md", "json": out_dir / "latest.json", "png": out_dir / "latest.png"}
    paths["md"].write_text(render_markdown(res))
    data = {
        "started": res.started, "seconds": res.seconds, "machine": res.machine,
        "figures": [f.to_dict() for f in res.figures], "load": res.load,
        "signing_overhead": signing_overhead(res.load) if res.load else [],
    }  # fmt: skip
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    render_chart(res, paths["png"])
    return paths
