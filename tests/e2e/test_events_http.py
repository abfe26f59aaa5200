"""GET /events (Server-Sent Events) through real HTTP against `jobsys api` (gunicorn,
gevent), with `Last-Event-ID` resume; `Client.events` and `jobsys events`."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from jobsys import Client
from jobsys.local.redis_server import RedisServer
from jobsys.store import Store

from processes import process_env, start_api, stop_gracefully


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    proc, url = start_api(redis_server.url, tmp_path / "api.log")
    yield url
    print(proc.output()[-3000:])
    stop_gracefully(proc)


def _messages(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Each SSE message of `response` as {"id", "event", "data"} (data decoded)."""
    message: dict[str, Any] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in message:
                yield message
            message = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            message[name] = json.loads(value) if name == "data" else value.strip()


def _complete_all(store: Store, ids: list[str]) -> None:
    """Complete `ids` in batches of 20, as a worker would, a little at a time."""
    done = 0
    while done < len(ids):
        claimed = store.claim("default", "w", 30, 20)
        store.complete_many("default", "w", [(c.id, c.attempt, "1") for c in claimed])
        done += len(claimed)
        time.sleep(0.002)


def test_a_reader_that_reconnects_with_last_event_id_misses_no_completion(
    api: str, store: Store
) -> None:
    """1,000 jobs complete while a client reads; it leaves after 500 completions and
    comes back with Last-Event-ID: together the two connections saw every completion
    once (the resume is exact: no duplicate even at the boundary)."""
    url = f"{api}/events?queue=default&types=completed"
    first: list[dict[str, Any]] = []
    with requests.get(url, stream=True, timeout=(5, 30)) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        ids = store.submit_many([("echo", i) for i in range(1000)])
        completer = threading.Thread(target=_complete_all, args=(store, ids))
        completer.start()
        for message in _messages(r):
            assert message["event"] == "completed"
            first.append(message)
            if len(first) == 500:
                break
    completer.join(60)
    assert not completer.is_alive()
    last_id = first[-1]["id"]
    second: list[dict[str, Any]] = []
    with requests.get(url, headers={"Last-Event-ID": last_id}, stream=True, timeout=(5, 30)) as r:
        for message in _messages(r):
            second.append(message)
            if len(first) + len(second) == 1000:
                break
    seen = [m["data"]["job_id"] for m in first + second]
    assert sorted(seen) == sorted(ids)
    assert {m["data"]["type"] for m in first + second} == {"completed"}
    assert all(m["data"]["queue"] == "default" for m in second)


def test_every_type_and_several_queues(api: str, store: Store) -> None:
    """Without `types`, every change shows; with two queues the id names both positions."""
    got: list[dict[str, Any]] = []
    with requests.get(f"{api}/events?queue=a,b", stream=True, timeout=(5, 30)) as r:
        one = store.submit("echo", queue="a")
        two = store.submit("echo", queue="b")
        store.cancel(two)
        for message in _messages(r):
            got.append(message)
            if len(got) == 3:
                break
    assert [(m["data"]["queue"], m["event"], m["data"]["job_id"]) for m in got] == [
        ("a", "queued", one),
        ("b", "queued", two),
        ("b", "cancelled", two),
    ]
    assert got[-1]["id"].startswith("a=") and ",b=" in got[-1]["id"]


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ("types=finished", {}, "types"),
        ("queue=a%20b", {}, "queue"),
        ("queue=" + ",".join(f"q{i}" for i in range(17)), {}, "queue"),
        ("", {"Last-Event-ID": "yesterday"}, "Last-Event-ID"),
        ("queue=a,b", {"Last-Event-ID": "1-0"}, "Last-Event-ID"),
    ],
)
def test_bad_queries_are_400s_naming_the_field(
    api: str, query: str, headers: dict[str, str], field: str
) -> None:
    r = requests.get(f"{api}/events?{query}", headers=headers, timeout=5)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


def test_client_events_and_the_cli_print_live_events(
    api: str, store: Store, redis_server: RedisServer
) -> None:
    with Client(api) as client:
        stream = client.events(["default"], types=["completed"])
        job_id = store.submit("echo")
        completer = threading.Timer(0.5, _complete_all, args=(store, [job_id]))
        completer.start()
        event = next(stream)
        stream.close()
        completer.join(10)  # its store is closed when the test ends
    assert (event["type"], event["job_id"]) == ("completed", job_id)
    assert event["event_id"] == event["id"]

    # --after 0-0 reads the retained stream from its start: the completion above first.
    with subprocess.Popen(
        [
            *[sys.executable, "-m", "jobsys", "events"],
            *["--queue", "default", "--types", "completed", "--after", "0-0"],
        ],
        env=process_env({"JOBSYS_URL": api}),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as cli:
        try:
            assert cli.stdout is not None
            ready, _, _ = select.select([cli.stdout], [], [], 60)
            assert ready, "jobsys events printed nothing"
            line = cli.stdout.readline()
            assert json.loads(line)["job_id"] == job_id
            # Connected: a job that completes now is printed live.
            live = store.submit("echo")
            _complete_all(store, [live])
            ready, _, _ = select.select([cli.stdout], [], [], 60)
            assert ready, "jobsys events printed no live event"
            assert json.loads(cli.stdout.readline())["job_id"] == live
        finally:
            cli.kill()
