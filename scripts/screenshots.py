"""Screenshots of the dashboard for the README: docs/img/dashboard-*.png.

Starts a private Redis, `jobsys api` and two workers, submits sample jobs (some
complete, some fail into the dead letter, two keep running, others wait in
queues no worker serves), then opens each page in headless Chromium and saves it.

    .venv/bin/python scripts/screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]

Needs Debian's Chromium (`apt-get install chromium`) and the dev extras (playwright).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import Page, sync_playwright

from jobsys.local.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobsys", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def submit(base: str, body: dict[str, object]) -> str:
    r = requests.post(f"{base}/submit", json=body, timeout=5)
    r.raise_for_status()
    return str(r.json()["id"])


def sample_jobs(base: str) -> dict[str, str]:
    """Submit the sample workload; the ids of the jobs worth a page of their own."""
    ids: dict[str, str] = {}
    for i in range(14):
        submit(base, {"task": "send-welcome-email", "queue": "emails", "payload": {"user": i}})
    for i in range(6):
        ids["completed"] = submit(
            base, {"task": "echo", "payload": {"invoice": 1040 + i, "lines": [3, 5, 8]}}
        )
    for i in range(4):
        ids["failed"] = submit(base, {"task": "fail", "max_retries": 1, "payload": {"n": i}})
    submit(base, {"task": "boom", "queue": "emails", "max_retries": 0, "payload": "smtp down"})
    ids["running"] = submit(base, {"task": "steps", "payload": {"n": 300, "pause": 1}})
    submit(base, {"task": "cooperative", "queue": "emails", "payload": 3600})
    for i in range(23):
        submit(base, {"task": "build-report", "queue": "reports", "payload": {"month": i % 12}})
    for i in range(57):
        submit(base, {"task": "thumbnail", "queue": "media", "payload": {"photo": i}})
    submit(base, {"task": "build-report", "queue": "reports", "delay_seconds": 3600})
    return ids


def shoot(page: Page, url: str, out: Path, wait_for: str) -> None:
    page.goto(url)
    page.wait_for_selector(wait_for)
    time.sleep(0.6)  # let the first refresh settle (relative times, chart)
    page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="jobsys-shots-"))
    redis_server = RedisServer(tmp / "redis", appendonly=False).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JOBSYS_"))}
    env |= {
        "REDIS_URL": redis_server.url,
        "SIMULATED_WORK_SECONDS": "0.1",
        "RETRY_BACKOFF_SECONDS": "0.1",
        "PYTHONPATH": str(ROOT / "tests"),  # the sample tasks: echo, fail, boom, steps ...
    }
    procs = [start(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "api.log")]
    try:
        wait_until(lambda: requests.get(f"{base}/health", timeout=1).ok, 20, "the API")
        for name, queues in (("w1", "default"), ("w2", "emails")):
            args = ["worker", "--tasks", "sample_tasks", "--queues", queues, "--concurrency", "2"]
            procs.append(start(args, env, tmp / f"{name}.log"))
        ids = sample_jobs(base)
        wait_until(
            lambda: (
                requests.get(f"{base}/jobs/{ids['failed']}", timeout=1).json()["status"] == "failed"
            ),
            30,
            "the failing jobs",
        )
        time.sleep(3)  # the running job reports some progress
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=opts.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            dash = f"{base}/dashboard/"
            shoot(page, dash, opts.out / "dashboard-overview.png", "[data-testid=queues-table]")
            shoot(page, f"{dash}#/jobs", opts.out / "dashboard-jobs.png", ".filters")
            for which in ("completed", "running", "failed"):
                shoot(
                    page,
                    f"{dash}#/job/{ids[which]}",
                    opts.out / f"dashboard-job-{which}.png",
                    "[data-field=status]",
                )
            shoot(page, f"{dash}#/dead-letter", opts.out / "dashboard-dead-letter.png", ".filters")
            shoot(page, f"{dash}#/workers", opts.out / "dashboard-workers.png", ".page-head")
            browser.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        redis_server.stop()


if __name__ == "__main__":
    main()
