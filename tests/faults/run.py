"""The full fault suite in one command; writes its tables to docs/reliability.md.

    python tests/faults/run.py [--out docs/reliability.md] [PYTEST ARGS...]

Runs ``pytest tests/faults`` with ``JOBSYS_FAULTS_FULL=1`` (bigger loads, more
faults, and the scenarios marked ``faults_full``), collects every invariant row and
figure the tests record, and renders them with the guarantee into the output file.
Extra arguments go to pytest (e.g. ``-k redis``). Exits with pytest's exit code.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import report  # noqa: E402
from netns import netem_available  # noqa: E402


def redis_version() -> str:
    from jobsys.local.redis_server import find_binary  # noqa: PLC0415

    try:
        out = subprocess.run(
            [find_binary(), "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except OSError as e:
        return f"unknown ({e})"
    m = re.search(r"v=(\S+)", out)
    name = "Valkey" if "valkey" in out.lower() else "Redis"
    return f"{name} {m.group(1)}" if m else out.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args, pytest_args = parser.parse_known_args()
    results = Path(tempfile.mkdtemp(prefix="jobsys-faults-")) / "results.jsonl"
    log = results.with_name("pytest.log")
    env = {**os.environ, "JOBSYS_FAULTS_FULL": "1", "JOBSYS_FAULTS_RESULTS": str(results)}
    cmd = [sys.executable, "-m", "pytest", "tests/faults", "-p", "no:cacheprovider",
           "-rsxX", "-v", *pytest_args]  # fmt: skip
    print(" ".join(cmd), f"(log: {log})", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        code = proc.wait()
    text = log.read_text()
    rows, figures = report.load(results)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Linux {platform.release()}, Python "
        f"{platform.python_version()}",
        "kernel": platform.release(),
        "redis_version": redis_version(),
        "netem": "available (unused)" if netem_available() else "not in this kernel (no "
        "sch_netem): loss and partitions use nftables, delay a userspace TCP relay",
        "exit_code": code,
        "duration_min": f"{(time.monotonic() - start) / 60:.1f}",
        "xfails": [ln.removeprefix("XFAIL ").strip() for ln in text.splitlines()
                   if ln.startswith("XFAIL ")],
        "skips": sorted({ln.removeprefix("SKIPPED ").strip() for ln in text.splitlines()
                         if ln.startswith("SKIPPED ")}),
    }  # fmt: skip
    args.out.write_text(report.render(rows, figures, meta))
    print(f"wrote {args.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
