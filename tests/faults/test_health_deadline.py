"""GET /health answers within its deadline however slow the link to Redis is: the
connect and the PING share one deadline (`HEALTH_DEADLINE_S`), and a new connection
sends no handshake. Redis sits behind the delay relay on 127.0.0.1 (no namespace
needed, so this runs everywhere and in CI)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import delay_relay
import pytest
from cluster import MakeRedis
from flask.testing import FlaskClient

from jobsys.api import create_app
from jobsys.api.app import HEALTH_DEADLINE_S
from jobsys.api.routes import STATE_KEY, ApiState
from jobsys.local.redis_server import free_port
from jobsys.settings import Settings

#: Slack over the deadline for a loaded 2-core machine (scheduling, the relay itself).
SLACK_S = 0.4


class RelayedApi:
    """A Flask test client whose API reaches Redis through the delay relay."""

    def __init__(self, client: FlaskClient, control: Path) -> None:
        self.client, self.control = client, control

    def delay(self, ms: float) -> None:
        delay_relay.request(self.control, op="delay", key="a", ms=ms)

    def health(self) -> tuple[int, dict[str, str], float]:
        started = time.monotonic()
        r = self.client.get("/health")
        return r.status_code, r.get_json(), time.monotonic() - started


@pytest.fixture
def api(make_redis: MakeRedis, tmp_path: Path) -> Iterator[RelayedApi]:
    server = make_redis("redis", appendonly=False)
    port, control = free_port(), tmp_path / "relay.sock"
    proc = delay_relay.start(
        [f"--upstream=127.0.0.1:{server.port}", f"--listen=a=127.0.0.1:{port}",
         f"--control={control}", "--seed=1"]
    )  # fmt: skip
    app = create_app(Settings.from_env({"REDIS_URL": f"redis://127.0.0.1:{port}/0"}))
    try:
        yield RelayedApi(app.test_client(), control)
    finally:
        state: ApiState = app.extensions[STATE_KEY]
        state.store.close()
        state.health.close()
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_health_on_a_new_connection_costs_one_round_trip(api: RelayedApi) -> None:
    # 150 ms one-way: a 300 ms round trip fits the deadline once, not twice. Before
    # the deadline, a new connection's handshake made this ~2 s (seven round trips).
    api.delay(150)
    code, body, took = api.health()
    assert (code, body) == (200, {"status": "ok", "redis": "ok"})
    assert 0.3 <= took < HEALTH_DEADLINE_S + SLACK_S, took


def test_health_answers_503_by_its_deadline_when_a_round_trip_is_longer(
    api: RelayedApi,
) -> None:
    assert api.health()[0] == 200  # a warm connection ...
    api.delay(400)  # ... then an 800 ms round trip: past the deadline
    for _ in range(2):  # the first drops its connection; the second opens a new one
        code, body, took = api.health()
        assert code == 503, body
        assert body["status"] == "unavailable" and body["error"] == "store unavailable"
        assert body["redis"] and body["detail"] == body["redis"]
        assert HEALTH_DEADLINE_S - 0.05 <= took < HEALTH_DEADLINE_S + SLACK_S, took
    api.delay(0)
    assert api.health()[0] == 200  # and back at once, on a new connection
