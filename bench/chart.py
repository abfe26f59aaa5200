"""``python -m bench.chart RESULTS.json OUT.png``: the comparison chart (needs matplotlib).

Runs in the tools venv (bench/.venv-peers/tools) unless this Python has matplotlib.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

JOBSYS_COLOUR = "#d62728"
PEER_COLOUR = "#7f7f7f"


def _bars(
    ax: Any,
    rows: list[tuple[str, dict[str, float]]],
    title: str,
    unit: str,
    log: bool = False,
    target: float | None = None,
    lower_is_better: bool = False,
) -> None:
    labels = [label for label, _ in rows]
    med = [st["median"] for _, st in rows]
    err = [
        [st["median"] - st["min"] for _, st in rows],
        [st["max"] - st["median"] for _, st in rows],
    ]
    colours = [JOBSYS_COLOUR if label.startswith("jobsys") else PEER_COLOUR for label in labels]
    y = range(len(rows))
    ax.barh(list(y), med, xerr=err, color=colours, capsize=2, ecolor="black")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    if log:
        # Bars on a log axis all start at the same decade below the smallest value.
        ax.set_xscale("log")
        ax.set_xlim(left=10 ** math.floor(math.log10(min(med))) / 2 if min(med) > 0 else 0.01)
    else:
        ax.set_xlim(left=0)
        ax.xaxis.set_major_locator(MaxNLocator(4))
    for i, (v, (_, st)) in enumerate(zip(med, rows, strict=True)):
        text = f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"
        ax.text(st["max"], i, "  " + text, va="center", fontsize=7)  # past the whisker
    if target is not None:
        ax.axvline(target, color=JOBSYS_COLOUR, linestyle="--", linewidth=1)
    better = "lower is better" if lower_is_better else "higher is better"
    ax.set_title(f"{title}\n({unit}; {better})", fontsize=9)
    ax.margins(x=0.25)


def render(data: dict[str, Any], out: Path) -> None:
    summary: dict[str, Any] = data["summary"]
    meta = data["meta"]
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    (a_enq, a_drain, a_lat), (a_mem, a_scale, a_http) = axes

    def rows(key: str) -> list[tuple[str, dict[str, float]]]:
        return [(r["label"], r[key]) for r in summary.values() if key in r]

    enqueue = rows("enqueue_per_s")
    _bars(a_enq, enqueue, "Enqueue, one producer, one job per call", "jobs/s")
    _bars(a_drain, rows("drain_per_s"), f"Drain, {meta['workers']} worker processes", "jobs/s")
    _bars(a_lat, rows("p50_ms"), f"Enqueue-to-start p50 at {meta['latency_rate']:.0f} jobs/s",
          "ms, log scale; target 1 ms", log=True, target=1.0, lower_is_better=True)  # fmt: skip
    _bars(a_mem, rows("bytes_per_finished_job"), "Redis memory per finished job",
          "bytes", lower_is_better=True)  # fmt: skip

    # tab10 without its red (index 3), which is jobsys's colour.
    peer_colours = iter([c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 3] * 2)
    for r in summary.values():
        sc = r.get("scaling")
        if not sc or len(sc) < 2:
            continue
        xs = [int(k) for k in sc]
        ys = [v["median"] for v in sc.values()]
        is_jobsys = r["label"].startswith("jobsys")
        a_scale.plot(xs, ys, marker="o", label=r["label"], linewidth=2.5 if is_jobsys else 1,
                     color=JOBSYS_COLOUR if is_jobsys else next(peer_colours))  # fmt: skip
    a_scale.set_yscale("log")
    a_scale.set_xticks([1, 2, 4])
    a_scale.set_xlabel(f"worker processes (this machine has {meta['cpus']} cores)")
    a_scale.set_title("Scaling: drain jobs/s by worker processes\n(higher is better)", fontsize=9)
    if a_scale.get_lines():
        a_scale.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        a_scale.text(0.5, 0.5, "not run in this mode", ha="center", transform=a_scale.transAxes)

    j = summary.get("jobsys", {})
    http_rows = []
    if "http_single_per_s" in j:
        http_rows.append(("POST /submit", j["http_single_per_s"]))
    if "http_batch_jobs_per_s" in j:
        http_rows.append((f"POST /submit/batch\n({meta['http_batch']} per request)",
                          j["http_batch_jobs_per_s"]))  # fmt: skip
    if "submit_many_per_s" in j:
        http_rows.append(("Store.submit_many", j["submit_many_per_s"]))
    if http_rows:
        _bars(a_http, [(f"jobsys {k}", v) for k, v in http_rows], "jobsys submit paths",
              "jobs/s, log; targets 3,000 and 50,000", log=True, target=3000)  # fmt: skip
        a_http.axvline(50_000, color=JOBSYS_COLOUR, linestyle=":", linewidth=1)
    else:
        a_http.set_axis_off()

    fig.suptitle(
        f"jobsys vs peers - {meta['date']}, {meta['cpus']} cores, {meta['workers']} worker "
        f"processes each, Redis {meta['redis'].split(',')[0]}, N={meta['jobs']:,}, "
        f"median of {meta['repeat']} (whiskers: min-max)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    render(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
