"""The results: latest.json (every run), latest.md (tables) and latest.png (chart)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import peers
from bench.systems.base import System

#: A system "keeps job state" when at least this many keys per job remain after a drain.
KEEPS_STATE_KEYS_PER_JOB = 0.5


def stats(values: list[float]) -> dict[str, float]:
    """Median and spread of the repeats of one measurement."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(runs: dict[str, Any], systems: list[System]) -> dict[str, Any]:
    """Medians and spreads per system and workload (what the tables and the chart show)."""
    out: dict[str, Any] = {}
    for s in systems:
        row: dict[str, Any] = {"label": s.label, "setup": s.setup}
        drains = runs["drain"].get(s.name, [])
        if drains:
            row["n"] = drains[0]["n"]
            for key in (
                "enqueue_per_s",
                "drain_per_s",
                "drain_with_startup_per_s",
                "bytes_per_queued_job",
                "bytes_per_finished_job",
                "keys_per_finished_job",
                "commands_per_enqueue",
                "commands_per_job_run",
            ):
                row[key] = stats([r[key] for r in drains])
            for key in ("enqueue_producer_cpu_us", "enqueue_redis_cpu_us"):
                if all(key in r for r in drains):  # runs written before they were measured
                    row[key] = stats([r[key] for r in drains])
            row["keeps_state"] = row["keys_per_finished_job"]["median"] >= KEEPS_STATE_KEYS_PER_JOB
            row["duplicates"] = sum(r["duplicates"] for r in drains)
            row["missing"] = sum(r["missing"] for r in drains)
            row["enqueue_commands"] = drains[-1]["enqueue_commands"]
            row["run_commands"] = drains[-1]["run_commands"]
        windows = runs["latency"].get(s.name, [])
        if windows:
            for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
                row[key] = stats([w[key] for w in windows])
        scaling = dict(runs["scaling"].get(s.name, {}))
        if scaling and drains:
            scaling.setdefault(str(drains[0]["workers"]), drains)
            row["scaling"] = {
                k: stats([r["drain_per_s"] for r in v])
                for k, v in sorted(scaling.items(), key=lambda kv: int(kv[0]))
            }
            if "1" in scaling:
                row["fifo_1_worker"] = all(r.get("out_of_order", 1) == 0 for r in scaling["1"])
        out[s.name] = row
    if runs.get("batch"):
        out.setdefault("jobsys", {})["submit_many_per_s"] = stats(
            [r["enqueue_per_s"] for r in runs["batch"]]
        )
    http = runs.get("http")
    if http:
        j = out.setdefault("jobsys", {})
        j["http_tool"] = http["tool"]
        if http["single"]:
            j["http_single_per_s"] = stats([r["requests_per_s"] for r in http["single"]])
            j["http_single_p99_ms"] = stats([r["latency_p99_ms"] or 0 for r in http["single"]])
        if http["batch"]:
            j["http_batch_jobs_per_s"] = stats([r["jobs_per_s"] for r in http["batch"]])
    return out


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 3, each with what this run measured."""
    j = summary.get("jobsys", {})
    peer_rows = {k: v for k, v in summary.items() if k != "jobsys"}
    rows: list[dict[str, Any]] = []

    def best(key: str, low: bool = False) -> tuple[str, float] | None:
        have = [(v["label"], v[key]["median"]) for v in peer_rows.values() if key in v]
        if not have:
            return None
        return (min if low else max)(have, key=lambda x: x[1])

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append({"target": target, "measured": measured, "met": met})

    peak = best("drain_per_s")
    if "drain_per_s" in j and peak:
        ratio = j["drain_per_s"]["median"] / peak[1]
        add(
            "Drain ≥ 2x the fastest peer",
            f"{ratio:.2f}x ({j['drain_per_s']['median']:,.0f}/s vs {peak[0]} {peak[1]:,.0f}/s)",
            ratio >= 2,
        )
    if "p50_ms" in j:
        p50, p99 = j["p50_ms"]["median"], j["p99_ms"]["median"]
        add("Enqueue-to-start p50 < 1 ms at 200 jobs/s", f"{p50:.2f} ms", p50 < 1)
        add("Enqueue-to-start p99 < 5 ms at 200 jobs/s", f"{p99:.2f} ms", p99 < 5)
    fastest = best("enqueue_per_s")
    if "enqueue_per_s" in j and fastest:
        mine = j["enqueue_per_s"]["median"]
        add(
            "Python-client single enqueue faster than every peer's",
            f"{mine:,.0f}/s vs {fastest[0]} {fastest[1]:,.0f}/s ({mine / fastest[1]:.2f}x)",
            mine > fastest[1],
        )
    if "http_single_per_s" in j:
        v = j["http_single_per_s"]["median"]
        add("HTTP `POST /submit` ≥ 3,000/s", f"{v:,.0f}/s ({j['http_tool']})", v >= 3000)
    if "http_batch_jobs_per_s" in j:
        v = j["http_batch_jobs_per_s"]["median"]
        add("HTTP batch submit ≥ 50,000 jobs/s", f"{v:,.0f} jobs/s", v >= 50_000)
    elif "http_single_per_s" in j:
        add("HTTP batch submit ≥ 50,000 jobs/s", "no `POST /submit/batch` in this jobsys", None)
    keepers = [
        (v["label"], v["bytes_per_finished_job"]["median"])
        for v in peer_rows.values()
        if v.get("keeps_state")
    ]
    if "bytes_per_finished_job" in j and keepers:
        lean = min(keepers, key=lambda x: x[1])
        mine = j["bytes_per_finished_job"]["median"]
        add(
            "Redis bytes per finished job ≤ the leanest peer that keeps job state",
            f"{mine:,.0f} B vs {lean[0]} {lean[1]:,.0f} B",
            mine <= lean[1],
        )
    return rows


# -- Markdown ------------------------------------------------------------------


def _num(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(st: dict[str, float] | None) -> str:
    return "—" if st is None else _num(st["median"])


def _spread(st: dict[str, float] | None) -> str:
    return "—" if st is None else f"{_num(st['min'])}-{_num(st['max'])}"


def _ratio(mine: dict[str, float] | None, theirs: dict[str, float] | None, low: bool) -> str:
    if not mine or not theirs or not theirs["median"] or not mine["median"]:
        return "—"
    r = theirs["median"] / mine["median"] if low else mine["median"] / theirs["median"]
    return f"{r:.2f}x"


#: How the report names the jobs of a run, by `--job`.
JOB_WORDS = {
    "noop": "no-op jobs",
    "incr": "jobs that each make one INCR on the worker process's own Redis connection",
    "async": "async jobs (an async handler that awaits one INCR through redis.asyncio)",
}


def markdown(meta: dict[str, Any], summary: dict[str, Any], goals: list[dict[str, Any]]) -> str:
    j = summary.get("jobsys", {})
    rows = list(summary.items())
    w = meta["workers"]
    lines = [
        "# jobsys benchmark results",
        "",
        f"Run `{meta['command']}` on {meta['date']} ({meta['mode']} mode, "
        f"{meta['duration_s']:.0f} s). Machine: **{meta['cpus']} CPU cores** "
        f"({meta['cpu_model']}), Python {meta['python']}. Redis {meta['redis']}: one private "
        "server for every system, `FLUSHALL` between runs. jobsys at "
        f"{meta['jobsys_commit']}.",
        "",
        f"N = {meta['jobs']:,} {JOB_WORDS[meta.get('job', 'noop')]} per drain run (fewer for "
        "the slowest systems: see the "
        f"N column), **{w} worker processes** per system, {meta['repeat']} repeats of every "
        "workload: each cell is the **median**, with the min-max spread of the repeats. "
        "Every worker process, the producer and Redis share the same "
        f"{meta['cpus']} cores, so no result here is CPU-parallel beyond that.",
        "",
    ]
    for note in meta.get("notes", []):
        lines.append(f"> Note: {note}")
    for err in meta.get("errors", []):
        lines.append(f"> **Failed run:** {err}")
    if meta.get("notes") or meta.get("errors"):
        lines.append("")
    if goals:
        lines += ["## Targets (issue 3)", "", "| target | measured | met |", "|---|---|---|"]
        for g in goals:
            met = "n/a" if g["met"] is None else ("yes" if g["met"] else "**no**")
            lines.append(f"| {g['target']} | {g['measured']} | {met} |")
        lines.append("")

    lines += [
        "## Enqueue: jobs/s from one producer process, one job per call",
        "",
        "The system's ordinary Python API, timed over the whole batch of N in a loop "
        "(no workers running). `jobsys ÷` is jobsys's median over the system's (above 1: "
        "jobsys is faster). CPU per job: the producer process's (`time.process_time`) and "
        "Redis's (`INFO cpu`, user + system) over the same loop, in microseconds; unlike "
        "jobs/s they leave out the time each side waits for the other, so they vary less "
        "on a shared machine.",
        "",
        "| system | median jobs/s | spread | jobsys ÷ | producer CPU µs/job | Redis CPU µs/job |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for _, r in rows:
        if "enqueue_per_s" in r:
            st = r["enqueue_per_s"]
            ratio = _ratio(j.get("enqueue_per_s"), st, low=False)
            cpu = " | ".join(
                f"{r[k]['median']:.1f}" if k in r else "-"
                for k in ("enqueue_producer_cpu_us", "enqueue_redis_cpu_us")
            )
            lines.append(f"| {r['label']} | {_cell(st)} | {_spread(st)} | {ratio} | {cpu} |")
    if "submit_many_per_s" in j:
        st = j["submit_many_per_s"]
        lines.append(
            f"| jobsys `Store.submit_many` ({meta['submit_many_batch']} per call) | "
            f"{_cell(st)} | {_spread(st)} | | | |"
        )
    if "http_single_per_s" in j:
        st = j["http_single_per_s"]
        lines.append(f"| jobsys `POST /submit` (HTTP) | {_cell(st)} | {_spread(st)} | | | |")
    if "http_batch_jobs_per_s" in j:
        st = j["http_batch_jobs_per_s"]
        lines.append(
            f"| jobsys `POST /submit/batch` (HTTP, {meta['http_batch']} jobs per request) | "
            f"{_cell(st)} | {_spread(st)} | | | |"
        )
    if "http_single_per_s" in j:
        lines += [
            "",
            f"HTTP: `jobsys api` (gunicorn, API_WORKERS=2 x API_THREADS=8, access log on) "
            f"driven by {j['http_tool']} with {meta['http_connections']} keep-alive "
            f"connections for {meta['http_seconds']:.0f} s per repeat, on the same 2 cores; "
            "every accepted job was checked to be in Redis. p99 request latency "
            f"{_cell(j.get('http_single_p99_ms'))} ms.",
        ]
    lines += [
        "",
        f"## Drain: jobs/s with {w} worker processes, N jobs queued before they start",
        "",
        "Counted by each job's side effect (a record appended to a file of its worker "
        "process), from the first job's start to the last one's; worker start-up is "
        "excluded (`with start-up` counts from the spawn of the workers).",
        "",
        "| system | N | median jobs/s | spread | jobsys ÷ | with start-up | lost / run twice |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in rows:
        if "drain_per_s" in r:
            st = r["drain_per_s"]
            lines.append(
                f"| {r['label']} | {r['n']:,} | {_cell(st)} | {_spread(st)} | "
                f"{_ratio(j.get('drain_per_s'), st, low=False)} | "
                f"{_cell(r['drain_with_startup_per_s'])} | {r['missing']} / {r['duplicates']} |"
            )
    lines += [
        "",
        f"## Latency: enqueue-to-start at {meta['latency_rate']:.0f} jobs/s, idle workers",
        "",
        f"{meta['repeat']} windows of {meta['latency_seconds']:g} s each; from just before "
        "the producer's enqueue call to the start of the handler (both `time.time_ns()` on "
        "this machine). Milliseconds; median of the windows (spread in brackets).",
        "",
        "| system | p50 ms | p95 ms | p99 ms | max ms | system ÷ jobsys (p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for _, r in rows:
        if "p50_ms" in r:
            lines.append(
                f"| {r['label']} | {_cell(r['p50_ms'])} ({_spread(r['p50_ms'])}) | "
                f"{_cell(r['p95_ms'])} | {_cell(r['p99_ms'])} ({_spread(r['p99_ms'])}) | "
                f"{_cell(r['max_ms'])} | {_ratio(j.get('p50_ms'), r['p50_ms'], low=True)} |"
            )
    lines += [
        "",
        "## Memory and Redis commands per job",
        "",
        "`INFO memory` `used_memory` deltas from the empty database: after the N jobs are "
        "queued, and after they have all finished and the workers have stopped. "
        "`keeps state` = about one key per job is left afterwards (the job's record, result "
        "or status stays readable). Commands = `INFO commandstats` deltas over N, which "
        "count the commands run inside Lua scripts as well as the EVALSHA or FCALL itself.",
        "",
        "| system | bytes / queued job | bytes / finished job | keeps state | "
        "commands / enqueue | commands / job run |",
        "|---|---:|---:|:---:|---:|---:|",
    ]
    for _, r in rows:
        if "bytes_per_queued_job" in r:
            keeps = "yes" if r["keeps_state"] else "no"
            lines.append(
                f"| {r['label']} | {_cell(r['bytes_per_queued_job'])} | "
                f"{_cell(r['bytes_per_finished_job'])} | {keeps} | "
                f"{_cell(r['commands_per_enqueue'])} | {_cell(r['commands_per_job_run'])} |"
            )
    scaled = [(n, r) for n, r in rows if r.get("scaling") and len(r["scaling"]) > 1]
    if scaled:
        counts = sorted({int(c) for _, r in scaled for c in r["scaling"]})
        lines += [
            "",
            "## Scaling: drain jobs/s by worker processes",
            "",
            f"This machine has **{meta['cpus']} cores**: past {meta['cpus']} worker processes "
            "they (and Redis) only share them, so the 4-worker column shows contention, not "
            "parallelism. N/4 jobs per run (N for the main worker count).",
            "",
            "`FIFO at W=1`: with one worker process, every job started after all jobs "
            "queued before it, in every run.",
            "",
            "| system | " + " | ".join(f"W={c}" for c in counts) + " | FIFO at W=1 |",
            "|---|" + "---:|" * len(counts) + ":---:|",
        ]
        for _, r in scaled:
            cells = [_cell(r["scaling"].get(str(c))) for c in counts]
            fifo = {True: "yes", False: "no"}.get(r.get("fifo_1_worker"), "—")
            lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {fifo} |")
    lines += [
        "",
        "## How each system was run",
        "",
        "| system | workers | versions |",
        "|---|---|---|",
    ]
    for name, r in rows:
        if "label" in r:
            version = meta["versions"].get(name, "")
            lines.append(f"| {r['label']} | {r['setup']} | {version} |")
    lines += [
        "",
        "Every peer runs in its own venv under `bench/.venv-peers/` (their pinned "
        "redis-py versions conflict), with hiredis installed as in jobsys's. Worker logs "
        "go to files at each system's default level. The job is the same everywhere: "
        "append one 32-byte record to a per-process file (`bench/runners/common.py`).",
        "",
    ]
    return "\n".join(lines)


# -- files -----------------------------------------------------------------------


def write(
    out_dir: Path, meta: dict[str, Any], runs: dict[str, Any], systems: list[System]
) -> list[Path]:
    """Write STEM.json, STEM.md and (when matplotlib is there) STEM.png.

    STEM is ``latest`` for a default run (what the README links), else the mode
    (``quick``, ``smoke``), so a smoke run in CI never overwrites the published results;
    ``-<job>`` follows for a run of another job than noop (``latest-incr``).
    """
    stem = "latest" if meta["mode"] == "default" else meta["mode"]
    if meta.get("job", "noop") != "noop":  # python -m bench --job incr: latest-incr.*
        stem = f"{stem}-{meta['job']}"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta.setdefault("command", " ".join(["python -m bench", *sys.argv[1:]]))
    summary = summarise(runs, systems)
    goals = targets(summary)
    data = {"meta": meta, "targets": goals, "summary": summary, "runs": runs}
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(markdown(meta, summary, goals))
    png_path = out_dir / f"{stem}.png"
    written = [md_path, json_path]
    if render_chart(json_path, png_path):
        written.append(png_path)
    else:
        print("bench: no matplotlib (bench/.venv-peers/tools): no chart drawn", file=sys.stderr)
    return written


def render_chart(json_path: Path, png_path: Path) -> bool:
    """Draw the chart with whichever Python has matplotlib (this one, else the tools venv)."""
    if _chart(Path(sys.executable), json_path, png_path):
        return True
    try:
        tools = peers.ensure("tools")
    except (peers.PeerEnvError, OSError):
        return False
    return _chart(tools, json_path, png_path)


def _chart(python: Path, json_path: Path, png_path: Path) -> bool:
    done = subprocess.run(
        [str(python), "-m", "bench.chart", str(json_path), str(png_path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0
