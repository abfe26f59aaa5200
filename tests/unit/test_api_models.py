"""ApiModel (jobsys/models.py): the answers' objects leave an optional None out; a
`ShownWhenSet` model shows its `null_when_set` fields as null when they were set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apps import close_app
from flask.json.provider import JSONProvider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from jobsys.api import create_app  # with it, every answer model of the API
from jobsys.api.schemas import BatchSubmitted, Schedule, Submitted
from jobsys.models import ApiModel, Job, JobStatus, ShownWhenSet
from jobsys.settings import Settings

JOB_ID = "9e535966-7e79-409c-89fa-634c9b732e9f"


def _models(cls: type[ApiModel]) -> Iterator[type[ApiModel]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


class Inner(ApiModel):
    name: str
    note: str | None = None


class Outer(ApiModel):
    inner: list[Inner] = Field(default_factory=list)
    first: Inner | None = None
    needed: int | None  # required, though it may be None: always shown


class Wider(Outer):
    extra: int | None = None


class Stored(ShownWhenSet):
    null_when_set = frozenset({"value"})

    key: str
    value: object = None
    comment: str | None = None


def test_an_optional_none_is_left_out_at_every_depth():
    assert Outer(needed=None).to_api() == {"inner": [], "needed": None}
    inner = [Inner(name="a"), Inner(name="b", note="n")]
    shown = Outer(inner=inner, first=Inner(name="c"), needed=1)
    assert shown.to_api() == {
        "inner": [{"name": "a"}, {"name": "b", "note": "n"}],
        "first": {"name": "c"},
        "needed": 1,
    }
    assert shown.model_dump_json() == (
        '{"inner":[{"name":"a"},{"name":"b","note":"n"}],"first":{"name":"c"},"needed":1}'
    )
    assert Wider(needed=2).to_api() == {"inner": [], "needed": 2}  # a subclass's fields too
    assert Wider(needed=2, extra=3).to_api() == {"inner": [], "needed": 2, "extra": 3}


def test_a_null_when_set_field_is_shown_only_when_it_was_set():
    assert Stored(key="k").to_api() == {"key": "k"}
    assert Stored(key="k", value=None).to_api() == {"key": "k", "value": None}
    assert Stored(key="k", value=[1]).to_api() == {"key": "k", "value": [1]}
    assert Stored(key="k", comment=None, value=None).model_dump_json() == '{"key":"k","value":null}'


def test_the_answers_keep_their_shapes():
    queued = Submitted(status=JobStatus.QUEUED, task="t", id=JOB_ID)
    assert queued.to_api() == {"status": "queued", "task": "t", "id": JOB_ID}
    assert Submitted(status=JobStatus.QUEUED, task="t", id=JOB_ID, replayed=True).to_api() == {
        "status": "queued",
        "task": "t",
        "id": JOB_ID,
        "replayed": True,
    }
    hashed = {"status": "queued", "task": "t", "created_at": "1700000000000"}
    assert "payload" not in Job.from_hash(JOB_ID, hashed).to_api()
    assert Job.from_hash(JOB_ID, {**hashed, "payload": "null"}).to_api()["payload"] is None
    schedule = {"name": "n", "cron": "0 0 31 2 *", "task": "t", "queue": "q", "source": "api"}
    never = Schedule.model_validate({**schedule, "next_run_at": None}).to_api()
    assert never == {**schedule, "next_run_at": None}  # a required null is shown
    assert Schedule.model_validate({**schedule, "payload": None, "next_run_at": None}).to_api() == {
        **schedule,
        "payload": None,
        "next_run_at": None,
    }


@pytest.mark.parametrize("model", list(_models(ApiModel)), ids=lambda m: m.__qualname__)
def test_every_answer_model_leaves_exactly_its_optional_fields_out_when_none(
    model: type[ApiModel],
):
    for name, field in model.model_fields.items():
        left_out = not field.is_required() and name not in model.null_when_set
        assert (field.exclude_if is not None) == left_out, name


@pytest.fixture(scope="module")
def provider() -> Iterator[JSONProvider]:
    app = create_app(Settings.from_env({"REDIS_PORT": "1"}))  # no Redis is asked
    yield app.json
    close_app(app)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    task=st.text().filter(str.isprintable),  # a task name's characters
    ids=st.lists(st.uuids().map(str), min_size=1, max_size=3),
    status=st.sampled_from(["queued", "scheduled", "waiting", "cancelled"]),
)
def test_the_json_text_of_an_answer_is_what_the_json_provider_writes(
    provider: JSONProvider, task: str, ids: list[str], status: str
):
    # The submit lane answers with to_api_json; a Flask view that returns to_api() with
    # its JSON provider's response.
    for answer in (
        Submitted(status=JobStatus(status), task=task, id=JOB_ID, replayed=True),
        BatchSubmitted(status="queued", count=len(ids), ids=ids, statuses=[status] * len(ids)),
    ):
        assert answer.to_api_json() == provider.response(answer.to_api()).get_data()
