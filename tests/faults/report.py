"""Collects the fault suite's results: a table in the terminal, docs/reliability.md.

Tests record rows (`invariants.Row`) and figures (named dicts of measurements). When
``JOBSYS_FAULTS_RESULTS`` names a file, each record is also appended there as one
JSON line, which `run.py` turns into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from invariants import Row, table

_lock = threading.Lock()
ROWS: list[dict[str, Any]] = []
FIGURES: list[dict[str, Any]] = []


def _append(record: dict[str, Any]) -> None:
    path = os.environ.get("JOBSYS_FAULTS_RESULTS")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps(record) + "\n")


def record_row(row: Row) -> None:
    d = row.to_dict()
    with _lock:
        ROWS.append(d)
        _append({"kind": "row", **d})
    print(f"\n{table([d])}")
    for p in row.problems:
        print(f"  problem: {p}")


def record_figure(name: str, **values: Any) -> None:
    with _lock:
        FIGURES.append({"name": name, **values})
        _append({"kind": "figure", "name": name, **values})
    print(f"\nfigure {name}: {json.dumps(values)}")


def load(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, figures = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            (rows if rec.pop("kind") == "row" else figures).append(rec)
    return rows, figures


# -- docs/reliability.md ---------------------------------------------------------


def _fig(figures: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [f for f in figures if f.get("name") == name]


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _s(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}"


def natural_key(text: str) -> list[str | int]:
    """Sorts numbers in `text` by value: "4e. 50 ms" before "4e. 200 ms"."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _delay_table(delays: list[dict[str, Any]]) -> str:
    head = [
        "scenario",
        "one-way delay",
        "submits during: answers",
        "slowest submit during (s)",
        "/health during",
        "enqueue → start p50 / p99 (s): before · during · after",
        "completed/s: before · during · after",
        "first job after removal (s)",
        "backlog cleared (s)",
        "latency normal (s)",
        "dup (lease lost)",
        "ambiguous: created/total",
    ]
    rows = []
    for f in delays:
        ph = f["phases"]
        starts = " · ".join(
            f"{_s(ph[k]['start_p50_s'])} / {_s(ph[k]['start_p99_s'])}"
            for k in ("before", "during", "after")
        )
        rate = " · ".join(
            "—" if ph[k]["completed_per_s"] is None else f"{ph[k]['completed_per_s']:g}"
            for k in ("before", "during", "after")
        )
        health = ", ".join(f"{n} x {code}" for code, n in sorted(f["health_codes"].items()))
        rows.append(
            [
                f["scenario"],
                f"{f['ms']:g} ± {f['jitter_ms']:g} ms for {f['hold_s']:g} s",
                ", ".join(f"{n} x {code}" for code, n in sorted(ph["during"]["statuses"].items())),
                _s(ph["during"]["submit_max_s"]),
                f"{health} (slowest {_s(f['health_slowest_s'])} s)",
                starts,
                rate,
                _s(f["first_job_after_heal_s"]),
                _s(f["backlog_s"]),
                _s(f["latency_back_s"]),
                f["dup_lease_lost"],
                f["ambiguous_created"],
            ]
        )
    return _md_table(head, rows)


def render(rows: list[dict[str, Any]], figures: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """docs/reliability.md: the guarantee, the scenarios, the measured tables."""
    from docs_text import FIXED, FOOTER, HEADER, SCENARIOS  # noqa: PLC0415

    rows = sorted(rows, key=lambda r: natural_key(str(r["scenario"])))
    jobs = sum(int(r["accepted"]) for r in rows)
    # Losses where the scenario lets Redis lose writes (its loss_window) are counted
    # apart: the guarantee holds "as long as Redis keeps its writes".
    guaranteed = [r for r in rows if not r.get("loss_window")]
    lost = sum(int(r["vanished"]) for r in guaranteed)
    unexplained = sum(int(r["dup_unexplained"]) for r in guaranteed)
    dup = sum(int(r["dup_lease_lost"]) for r in rows)
    in_windows: dict[str, list[int]] = {}
    for r in rows:
        if r.get("loss_window"):
            counts = in_windows.setdefault(str(r["loss_window"]), [0, 0])
            counts[0] += int(r["vanished"])
            counts[1] += int(r["dup_unexplained"])
    windows = "".join(
        f" In {window}, which its scenarios allow: {v} lost, {u} run again."
        for window, (v, u) in in_windows.items()
    )
    failed = [r["scenario"] for r in rows if not r["ok"]]
    parts = [HEADER.format(**meta)]
    parts.append("## Results of the last full run\n")
    parts.append(
        f"Run {meta['date']} on {meta['machine']}: **{jobs} jobs** accepted across "
        f"{len(rows)} scenario runs; **{dup} run twice after a lost lease** (allowed by "
        f"at-least-once, counted). Outside the windows where Redis may lose writes: "
        f"**{lost} lost**, **{unexplained} duplicated without a lost lease**.{windows} "
        f"Scenarios failing an invariant: {', '.join(failed) if failed else '**none**'}.\n"
    )
    parts.append(table(rows) + "\n")
    parts.append(
        "`recovery (s)` is per scenario: for killed or frozen workers, the longest time "
        "one of their jobs stayed in their hands; for Redis restarts, the longest time "
        "until submits were accepted and jobs completed again; for partitions, heal → "
        "the first job completed; for delays, delay removed → every job accepted before "
        "then ended; for the API, the longest downtime per restart; for "
        "maxmemory, memory freed → the first 202.\n"
    )
    aof = _fig(figures, "aof")
    if aof:
        parts.append("### Redis restarts: what each fsync mode lost\n")
        parts.append(
            _md_table(
                [
                    "appendfsync",
                    "signal",
                    "restarts",
                    "jobs accepted",
                    "accepted jobs lost",
                    "completions rolled back (ran again)",
                    "API back after (s)",
                    "workers back after (s)",
                ],
                [
                    [
                        f["fsync"],
                        f["signal"],
                        f["restarts"],
                        f["accepted"],
                        f["lost"],
                        f["rolled_back_runs"],
                        f"{f['api_back_s']:.2f}",
                        f"{f['workers_back_s']:.2f}",
                    ]
                    for f in aof
                ],
            )
            + "\n"
        )
    delays = sorted(
        _fig(figures, "delay"), key=lambda f: (natural_key(str(f["scenario"])), f["ms"])
    )
    if delays:
        parts.append("### Delay on the path to Redis (userspace relay, not netem)\n")
        parts.append(_delay_table(delays) + "\n")
        parts.append(
            "Delay is one-way, on the workers' and the API's paths at once (a round trip "
            "takes twice as long), under a steady load of `fault.work` jobs. Phases are "
            "by when a submit was sent: before the delay, during it, and after it was "
            "removed until the load ended (the load's threads catch up on the submits "
            "the delay held back, so *after* starts with a burst). *enqueue → start*: "
            "from sending the submit to the handler's start (first attempt). "
            "*backlog cleared*: delay removed → every job accepted before then ended; "
            "*latency normal*: delay removed → the first submit from which on every job "
            "started within max(0.5 s, 2 x the p99 before).\n"
        )
    api = _fig(figures, "api_partition")
    mm = _fig(figures, "maxmemory")
    st = _fig(figures, "schemathesis")
    hostile = _fig(figures, "hostile")
    sweep = _fig(figures, "slow_loris_sweep")
    loris = _fig(figures, "slow_loris_48")
    few = _fig(figures, "slow_clients_6")
    lines = []
    for f in api:
        lines.append(
            f"- **API cut off from Redis** (5 s): {f['submits_during_cut']} submits during the "
            f"cut got {f['statuses_during_cut']}; the slowest answer took "
            f"{f['slowest_submit_s']} s, `/health` answered 503 in at most "
            f"{f['slowest_health_s']} s; submits were accepted again {f['api_back_s']} s after "
            "the cut healed."
        )
    for f in mm:
        lines.append(
            f"- **Redis at maxmemory**: {f['refused_507']} submits refused with a JSON 507 "
            f"while {f['accepted_while_filling']} accepted jobs kept running and settled "
            f"(settled while full: {f['settled_while_full']}); after memory was freed the next "
            f"submit was accepted within {f['freed_to_202_s']} s."
        )
    for f in st:
        verdict = (
            "no 5xx, no response off the spec"
            if f["exit_code"] == 0
            else f"**findings: {'; '.join(f.get('findings', [])) or 'see the pytest log'}** "
            f"(e.g. `{(f.get('reproduce') or ['-'])[0]}`)"
        )
        lines.append(
            f"- **schemathesis** (stateless + stateful, every check): {f['requests']} "
            f"requests, answers {f['statuses']}; {verdict}; Redis held "
            f"{f['jobs_in_redis']} jobs, the ids 202 answers gave: {f['jobs_accepted']}."
        )
    for f in _fig(figures, "hosts"):
        lines.append(
            f"- **A worker host cut off** (lease {f['lease_s']:g} s): the {f['held']} jobs it "
            f"held came back through the other host after {f['back_s']} s; `GET /workers` "
            f"dropped it after {f['dropped_from_workers_s']} s."
        )
    for f in _fig(figures, "split_brain"):
        window = f["lost_window_s"]
        lost_in = f" (submitted {window[0]} … {window[1]} s after the cut)" if window else ""
        lines.append(
            f"- **Split brain** (`REDIS_WAIT_REPLICAS={f['wait_replicas']}`, "
            f"`min-replicas-to-write 1`): {f['accepted']} submits accepted, {f['lost']} "
            f"of them lost{lost_in}, {f['refused']} refused; the Sentinels switched "
            f"{f['switch_s']} s after the cut."
        )
    for f in hostile:
        lines.append(
            f"- **Hostile payloads**: {f['cases']} cases, each a JSON 4xx (or, for the valid "
            f"ones, stored and read back exactly); another client's slowest answer meanwhile: "
            f"{f['slowest_other_client_s']} s."
        )
    for f in few:
        lines.append(
            f"- **6 slow clients** (bodies or headers a byte a second): another client's "
            f"slowest answer {f['slowest_s']} s over {f['probes']} requests."
        )
    for f in loris:
        lines.append(
            f"- **48 slow-loris clients**: {f['slower_than_1s']} of {f['probes']} requests of "
            f"another client took over 1 s (slowest {f['slowest_s']} s; the probe gives up "
            "at 3 s)."
        )
    if lines:
        parts.append("### Other measured figures\n")
        parts.append("\n".join(lines) + "\n")
    if sweep:
        parts.append("### Slow clients against `jobsys api` (2 gevent worker processes)\n")
        parts.append(
            _md_table(
                ["slow clients", "requests of another client", "slower than 1 s", "slowest (s)"],
                [[f["clients"], f["probes"], f["slower_than_1s"], f["slowest_s"]] for f in sweep],
            )
            + "\n"
        )
    parts.append(FIXED)
    if meta.get("xfails"):
        parts.append("### Known defects (tests marked xfail, strict)\n")
        parts.append("\n".join(f"- `{x}`" for x in meta["xfails"]) + "\n")
    if meta.get("skips"):
        parts.append("### Skipped here\n")
        parts.append("\n".join(f"- {x}" for x in meta["skips"]) + "\n")
    parts.append(SCENARIOS)
    parts.append(FOOTER.format(**meta))
    return "\n".join(parts)
