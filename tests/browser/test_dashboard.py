"""The dashboard in a real browser: Chromium (Debian's /usr/bin/chromium) driven by
Playwright, against `jobsys api` and `jobsys worker` processes on the private Redis.

One API and one worker serve the whole module (starting them per test would cost
most of the time budget); each test isolates itself with queue and task names of
its own. Tests that need an endpoint another part of issue 6 adds are skipped,
naming the route, until the app has it, and then run without any change here.
Every page is also checked for console errors: the only ones tolerated are the
browser's "Failed to load resource" lines for endpoints this app does not have
(the dashboard handles those 404s; the browser logs them anyway).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from werkzeug.exceptions import MethodNotAllowed, NotFound

from jobsys.api.app import create_app
from jobsys.local.redis_server import RedisServer, free_port
from jobsys.settings import Settings

from processes import Proc, wait_for, wait_for_http

CHROMIUM = Path(os.environ.get("JOBSYS_TEST_CHROMIUM", "/usr/bin/chromium"))
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
#: How long a browser expectation waits (the dashboard refreshes every 2 s).
EXPECT_MS = 10_000

if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extras) missing")
expect = sync_api.expect
expect.set_options(timeout=EXPECT_MS)


# ---- the system under test ------------------------------------------------------------


@dataclass
class System:
    """The running API and worker, and what the app they run serves."""

    base: str
    rules: set[str]
    routes: Any  # werkzeug MapAdapter of the app's routes
    procs: list[Proc]
    redis_url: str

    @property
    def dashboard(self) -> str:
        return f"{self.base}/dashboard/"

    def has(self, rule: str) -> bool:
        return rule in self.rules

    def serves(self, path: str) -> bool:
        """Whether some route of the app matches `path` (whatever the method)."""
        try:
            self.routes.match(path, method="GET")
        except MethodNotAllowed:
            return True
        except NotFound:
            return False
        return True

    def submit(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        r = requests.post(f"{self.base}/submit", json=body, headers=headers, timeout=5)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        r = requests.get(f"{self.base}/jobs/{job_id}", timeout=5)
        assert r.status_code == 200, r.text
        return dict(r.json())


def needs(system: System, rule: str) -> None:
    """Skip until the app has `rule` (an endpoint of another part of issue 6)."""
    if not system.has(rule):
        pytest.skip(f"the API has no {rule} route yet")


def app_routes(redis_url: str, extra_env: dict[str, str] | None = None) -> tuple[set[str], Any]:
    # Building the app connects to nothing; it only tells which routes it serves.
    app = create_app(Settings.from_env({"REDIS_URL": redis_url, **(extra_env or {})}))
    return {r.rule for r in app.url_map.iter_rules()}, app.url_map.bind("localhost")


@pytest.fixture(scope="module")
def system(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    tmp = tmp_path_factory.mktemp("browser")
    env = {
        "REDIS_URL": redis_server.url,
        "SIMULATED_WORK_SECONDS": "0.05",
        "RETRY_BACKOFF_SECONDS": "0.05",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "WORKER_POLL_SECONDS": "0.2",
    }
    port = free_port()
    procs = [Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "api.log")]
    worker_args = ["worker", "--tasks", "sample_tasks", "--queues", "default,served"]
    procs.append(Proc([*worker_args, "--concurrency", "4"], env, tmp / "worker.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health")
        rules, routes = app_routes(redis_server.url)
        yield System(base, rules, routes, procs, redis_server.url)
    finally:
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            finally:
                p.stop()


# ---- the browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page."""

    serves: Any
    errors: list[str] = field(default_factory=list)
    #: Statuses whose "Failed to load resource" lines a test expects (e.g. 401).
    allowed_statuses: set[int] = field(default_factory=set)

    def on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = str(msg.text)
        url = str(msg.location.get("url", ""))
        if text.startswith("Failed to load resource"):
            if "404" in text and not self.serves(urlsplit(url).path):
                return  # an endpoint this app lacks; the page says "not available"
            if any(f"status of {s}" in text for s in self.allowed_statuses):
                return
        self.errors.append(f"{text} ({url})")


@pytest.fixture
def page(browser: Any, system: System) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(EXPECT_MS)
    p = context.new_page()
    console = Console(system.serves)
    p.on("console", console.on_console)
    p.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    p.console = console
    yield p
    context.close()
    assert console.errors == [], "the page logged errors"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def confirm(page: Any) -> None:
    """Accept the page's confirm <dialog>."""
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#confirm-ok").click()
    expect(dialog).to_be_hidden()


# ---- what works against the API as it is -----------------------------------------------


def test_the_dashboard_is_served_with_its_files(system: System) -> None:
    r = requests.get(f"{system.base}/dashboard", timeout=5, allow_redirects=False)
    assert r.status_code == 308 and r.headers["Location"].endswith("/dashboard/")
    index = requests.get(system.dashboard, timeout=5)
    assert index.status_code == 200 and "text/html" in index.headers["Content-Type"]
    for path in ("static/style.css", "static/js/app.js", "static/js/api.js", "static/icon.svg"):
        r = requests.get(f"{system.dashboard}{path}", timeout=5)
        assert r.status_code == 200, path
    js = requests.get(f"{system.dashboard}static/js/app.js", timeout=5)
    assert "javascript" in js.headers["Content-Type"]
    # Nothing may come from outside the machine: no absolute URLs in what is served.
    for text in (index.text, requests.get(f"{system.dashboard}static/style.css", timeout=5).text):
        assert "http://" not in text and "https://" not in text


def test_the_overview_shows_live_queue_depths(page: Any, system: System) -> None:
    queue = unique("parked")  # no worker serves it: its jobs stay ready
    for _ in range(3):
        system.submit({"task": "hello", "queue": queue})
    page.goto(system.dashboard)
    row = page.locator(f"tr[data-queue='{queue}']")
    expect(row.locator("td[data-col=depth]")).to_have_text("3")
    expect(page.locator("[data-testid=stat-ready] .stat-value")).not_to_have_text("0")
    for _ in range(2):
        system.submit({"task": "hello", "queue": queue})
    expect(row.locator("td[data-col=depth]")).to_have_text("5")  # the 2 s refresh
    row.get_by_role("link", name=queue).click()
    expect(page).to_have_url(f"{system.dashboard}#/jobs?queue={queue}")


def test_the_overview_pauses_and_resumes_a_queue(page: Any, system: System) -> None:
    queue = unique("held")  # no worker serves it
    system.submit({"task": "hello", "queue": queue})
    page.goto(system.dashboard)
    row = page.locator(f"tr[data-queue='{queue}']")
    row.get_by_test_id(f"pause-{queue}").click()
    expect(row.get_by_test_id(f"paused-{queue}")).to_have_text("paused")  # the 2 s refresh
    paused = {
        q["name"]: q["paused"]
        for q in requests.get(f"{system.base}/queues", timeout=5).json()["queues"]
    }
    assert paused[queue] is True
    expect(row.get_by_test_id(f"pause-{queue}")).to_have_text("Resume")
    row.get_by_test_id(f"pause-{queue}").click()
    expect(row.get_by_test_id(f"paused-{queue}")).to_have_count(0)
    limits = {"rate": {"limit": 50, "period_seconds": 10}, "concurrency": 2}
    requests.put(f"{system.base}/queues/{queue}/limits", json=limits, timeout=5)
    # Setting limits makes no job event: the overview shows them at its 10 s refresh.
    expect(row.locator("td[data-col=limits]")).to_have_text("50/10s, 2 per key", timeout=15_000)


def test_a_submitted_job_reaches_completed_on_its_page(page: Any, system: System) -> None:
    job_id = system.submit({"task": "echo", "queue": "served", "payload": {"n": [1, 2, 3]}})
    page.goto(f"{system.dashboard}#/job/{job_id}")
    expect(page.locator("[data-field=status] .badge")).to_have_text("completed")
    expect(page.locator("[data-testid=result]")).to_contain_text('"echo"')
    expect(page.locator("[data-field=queue]")).to_contain_text("served")
    expect(page.locator("[data-field=completed_at] time")).to_be_visible()
    expect(page.get_by_test_id("cancel")).to_have_count(0)  # nothing left to cancel


def test_a_failing_job_shows_its_error(page: Any, system: System) -> None:
    job_id = system.submit({"task": "fail", "max_retries": 0})
    page.goto(f"{system.dashboard}#/job/{job_id}")
    expect(page.locator("[data-field=status] .badge")).to_have_text("failed")
    expect(page.get_by_test_id("job-error")).to_contain_text("always fails")
    expect(page.locator("[data-field=attempts]")).to_contain_text("1 of 1")


def test_an_unknown_job_says_so(page: Any, system: System) -> None:
    page.console.allowed_statuses.add(404)
    page.goto(f"{system.dashboard}#/job/{uuid.uuid4()}")
    expect(page.get_by_test_id("job-missing")).to_contain_text("No such job")


def test_cancel_a_queued_job(page: Any, system: System) -> None:
    job_id = system.submit({"task": "hello", "queue": unique("parked")})
    page.goto(f"{system.dashboard}#/job/{job_id}")
    expect(page.locator("[data-field=status] .badge")).to_have_text("queued")
    page.get_by_test_id("cancel").click()
    confirm(page)
    expect(page.locator("[data-field=status] .badge")).to_have_text("cancelled")
    assert system.job(job_id)["status"] == "cancelled"


def test_cancel_a_running_job(page: Any, system: System) -> None:
    job_id = system.submit({"task": "cooperative", "queue": "served", "payload": 60})
    wait_for(lambda: system.job(job_id)["status"] == "processing", 10, what="running")
    page.goto(f"{system.dashboard}#/job/{job_id}")
    expect(page.locator("[data-field=status] .badge")).to_have_text("processing")
    page.get_by_test_id("cancel").click()
    # Dismissing the dialog cancels nothing.
    page.locator("#confirm-dialog button[value=cancel]").click()
    assert system.job(job_id)["status"] == "processing"
    page.get_by_test_id("cancel").click()
    confirm(page)
    expect(page.locator("[data-field=status] .badge")).to_have_text("cancelled")
    assert system.job(job_id)["result"] == "stopped early"


def test_open_a_job_by_id_from_the_jobs_page(page: Any, system: System) -> None:
    job_id = system.submit({"task": "hello", "queue": unique("parked")})
    page.goto(f"{system.dashboard}#/jobs")
    page.get_by_label("Job id").fill(job_id)
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(f"{system.dashboard}#/job/{job_id}")
    expect(page.locator("[data-field=task]")).to_contain_text("hello")


@pytest.mark.parametrize(
    ("route", "ready"),
    [
        ("#/", "[data-testid=queues-table]"),
        ("#/jobs", "[data-testid=jobs-table], .empty"),
        ("#/dead-letter", "[data-testid=dead-table], .empty"),
        ("#/workers", "[data-testid=workers-table], .empty"),
        ("#/nowhere", ".empty"),
    ],
)
def test_every_page_renders(page: Any, system: System, route: str, ready: str) -> None:
    """Each page draws its content, or "not available" for an endpoint the API lacks,
    with no console error either way (the `page` fixture checks)."""
    system.submit({"task": "hello", "queue": unique("parked")})
    page.goto(f"{system.dashboard}{route}")
    expect(page.locator(ready).first).to_be_visible()
    expect(page.locator(".banner-error")).to_have_count(0)


def test_an_api_error_shows_a_banner(page: Any, system: System) -> None:
    """A failing endpoint gives an error banner, not a broken page, and the banner goes
    once the endpoint answers again."""
    page.goto(system.dashboard)
    expect(page.locator("[data-testid=queues-table]")).to_be_visible()
    # The browser itself refuses the connection, as when the API is down.
    page.route("**/queues*", lambda route: route.abort("connectionrefused"))
    # The overview redraws on the queues' events, and at the latest every 10 s.
    expect(page.locator(".banner-error")).to_contain_text("cannot be reached", timeout=15_000)
    page.console.errors.clear()  # the aborted fetches are logged by the browser
    page.unroute("**/queues*")
    expect(page.locator(".banner-error")).to_have_count(0, timeout=15_000)


def test_redis_down_shows_a_503_banner(page: Any, system: System, tmp_path: Path) -> None:
    """An API whose Redis does not answer: every panel says so, the page still works."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    port = free_port()
    api = Proc(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        {"REDIS_URL": dead_redis},
        tmp_path / "api.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/health"), 20, what="the API")
        page.console.allowed_statuses.add(503)
        page.goto(f"{base}/dashboard/")
        banner = page.locator(".banner-error")
        expect(banner).to_contain_text("Redis is unavailable (503)")
        page.get_by_role("link", name="Jobs", exact=True).click()
        page.get_by_label("Job id").fill(str(uuid.uuid4()))
        page.get_by_role("button", name="Open").click()
        expect(page.locator(".banner-error")).to_contain_text("503")
    finally:
        api.stop()


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


# ---- what needs the endpoints of the other parts of issue 6 -----------------------------


def test_jobs_filters_and_load_more(page: Any, system: System) -> None:
    needs(system, "/jobs")
    queue = unique("parked")
    alpha, beta = unique("alpha"), unique("beta")
    body = {"queue": queue, "jobs": [{"task": alpha}] * 52 + [{"task": beta}] * 3}
    r = requests.post(f"{system.base}/submit/batch", json=body, timeout=5)
    assert r.status_code == 202, r.text
    page.goto(f"{system.dashboard}#/jobs?queue={queue}")
    rows = page.locator("[data-testid=jobs-table] tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_test_id("load-more").click()
    expect(rows).to_have_count(55)
    page.get_by_label("Task").fill(beta)
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(3)
    page.get_by_label("Status").select_option("completed")
    expect(page.locator(".empty")).to_contain_text("No jobs match")
    page.get_by_label("Status").select_option("queued")
    expect(rows).to_have_count(3)
    rows.first.get_by_role("link").click()
    expect(page.locator("[data-field=task]")).to_contain_text(beta)


def test_the_dead_letter_lists_and_retries_a_failed_job(page: Any, system: System) -> None:
    needs(system, "/dead-letter")
    needs(system, "/dead-letter/retry")
    job_id = system.submit({"task": "fail", "queue": "served", "max_retries": 0})
    wait_for(lambda: system.job(job_id)["status"] == "failed", 10, what="dead")
    page.goto(f"{system.dashboard}#/dead-letter?queue=served")
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_contain_text("always fails")
    row.get_by_test_id("retry").click()
    expect(row).to_contain_text("requeued")
    wait_for(lambda: system.job(job_id).get("replayed") == 1, 10, what="replayed")


def test_the_dead_letter_purge_asks_first(page: Any, system: System) -> None:
    needs(system, "/dead-letter")
    needs(system, "/dead-letter/purge")
    ids = [system.submit({"task": "fail", "queue": "served", "max_retries": 0}) for _ in range(3)]
    other = system.submit({"task": "fail", "queue": "default", "max_retries": 0})
    for job_id in [*ids, other]:
        wait_for(lambda j=job_id: system.job(j)["status"] == "failed", 10, what="dead jobs")
    page.goto(f"{system.dashboard}#/dead-letter?queue=served")
    expect(page.locator(f"tr[data-job='{ids[0]}']")).to_be_visible()
    page.get_by_test_id("purge").click()
    page.locator("#confirm-dialog button[value=cancel]").click()
    expect(page.locator(f"tr[data-job='{ids[0]}']")).to_be_visible()
    page.get_by_test_id("purge").click()
    confirm(page)
    expect(page.locator(".empty")).to_contain_text("No dead jobs match")
    r = requests.get(f"{system.base}/dead-letter", params={"queue": "default"}, timeout=5)
    assert other in [j["id"] for j in r.json()["jobs"]]  # outside the filter: kept


def test_the_workers_page_lists_the_worker(page: Any, system: System) -> None:
    needs(system, "/workers")
    page.goto(f"{system.dashboard}#/workers")
    table = page.get_by_test_id("workers-table")
    expect(table).to_contain_text(str(system.procs[1].pid))
    expect(table).to_contain_text("served")
    page.goto(system.dashboard)
    expect(page.locator("[data-testid=stat-workers] .stat-value")).not_to_have_text("n/a")


def test_the_overview_draws_throughput(page: Any, system: System) -> None:
    queues = requests.get(f"{system.base}/queues", timeout=5).json()["queues"]
    if not any("throughput" in q for q in queues):
        pytest.skip("GET /queues has no throughput field yet")
    job_id = system.submit({"task": "hello", "queue": "served"})
    wait_for(lambda: system.job(job_id)["status"] == "completed", 10, what="completed")
    page.goto(system.dashboard)
    chart = page.get_by_test_id("throughput-chart")
    expect(chart.locator("rect.completed").first).to_be_visible()


def test_the_token_prompt_when_auth_is_on(browser: Any, system: System, tmp_path: Path) -> None:
    needs(system, "/auth/whoami")
    admin, producer = "admin-" + uuid.uuid4().hex, "producer-" + uuid.uuid4().hex
    env = {
        "REDIS_URL": system.redis_url,
        "JOBSYS_ADMIN_TOKENS": admin,
        "JOBSYS_PRODUCER_TOKENS": producer,
    }
    port = free_port()
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    context = browser.new_context()
    context.set_default_timeout(EXPECT_MS)
    try:
        wait_for_http(f"{base}/health")
        _, routes = app_routes(system.redis_url, env)
        console = Console(lambda path: _serves(routes, path), allowed_statuses={401})
        page = context.new_page()
        page.on("console", console.on_console)
        page.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
        page.goto(f"{base}/dashboard/")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.locator("#token-input").fill("not-a-valid-token-at-all")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#token-error")).to_contain_text("refused")
        page.locator("#token-input").fill(producer)
        page.get_by_role("button", name="Sign in").click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_test_id("role-notice")).to_contain_text("producer")
        expect(
            page.get_by_test_id("queues-table").or_(page.locator(".empty")).first
        ).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('jobsys.token')") == producer
        page.get_by_role("button", name="Sign out").click()
        expect(dialog).to_be_visible()
        page.locator("#token-input").fill(admin)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("role")).to_have_text("admin")
        expect(page.get_by_test_id("role-notice")).to_have_count(0)
        assert console.errors == []
    finally:
        context.close()
        api.stop()


def _serves(routes: Any, path: str) -> bool:
    try:
        routes.match(path, method="GET")
    except MethodNotAllowed:
        return True
    except NotFound:
        return False
    return True


def test_the_job_page_follows_the_event_stream_instead_of_polling(
    page: Any, system: System
) -> None:
    """A job that runs 8 s: its page reads it once and then on each of its events
    (started, completed) through GET /events, where polling every 2 s would have read it
    five times or more."""
    needs(system, "/events")
    reads: list[str] = []
    streams: list[str] = []

    def on_request(request: Any) -> None:
        path = urlsplit(request.url).path
        if path.startswith("/events"):
            streams.append(request.url)
        elif path.startswith("/jobs/"):
            reads.append(request.url)

    page.on("request", on_request)
    job_id = system.submit({"task": "sleep", "queue": "served", "payload": 8})
    page.goto(f"{system.dashboard}#/job/{job_id}")
    expect(page.locator("[data-field=status] .badge")).to_have_text("processing")
    expect(page.locator("[data-field=status] .badge")).to_have_text("completed", timeout=20_000)
    assert streams and "queue=served" in streams[0]
    assert len(reads) <= 3, reads


def test_a_workflow_page_draws_its_graph(page: Any, system: System) -> None:
    steps = [
        {"name": "extract", "task": "echo"},
        {"name": "left", "task": "echo", "after": ["extract"]},
        {"name": "right", "task": "fail", "max_retries": 0, "after": ["extract"]},
        {"name": "report", "task": "echo", "after": ["left", "right"]},
    ]
    r = requests.post(
        f"{system.base}/workflows", json={"queue": "served", "steps": steps}, timeout=5
    )
    assert r.status_code == 202, r.text
    wf = r.json()
    page.goto(f"{system.dashboard}#/workflow/{wf['id']}")
    graph = page.get_by_test_id("workflow-graph")
    expect(graph.locator("[data-step]")).to_have_count(4)
    expect(graph.locator("line.wf-edge")).to_have_count(4)
    expect(graph.locator("[data-step=report]")).to_have_attribute("data-status", "cancelled")
    expect(graph.locator("[data-step=left]")).to_have_attribute("data-status", "completed")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    page.get_by_test_id("workflow-steps").get_by_role("link", name="report").click()
    expect(page.locator("[data-field=depends_on]")).to_be_visible()
    expect(page.get_by_test_id("job-error")).to_contain_text("dependency")
