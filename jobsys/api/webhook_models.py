"""The body of ``POST /webhooks`` (api/webhooks.py), apart so that the OpenAPI
document can describe it without importing the routes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobsys.models import QUEUE_NAME_PATTERN
from jobsys.store import HOOK_EVENTS
from jobsys.webhooks.safety import check_url

#: Most queues one subscription names.
MAX_SUBSCRIBED_QUEUES = 16

HookEvent = Literal["completed", "failed", "cancelled"]
assert set(HookEvent.__args__) == set(HOOK_EVENTS)  # type: ignore[attr-defined]


def _all_events() -> list[HookEvent]:
    return ["completed", "failed", "cancelled"]


class WebhookRequest(BaseModel):
    """The JSON body of POST /webhooks."""

    model_config = ConfigDict(extra="forbid", strict=True, title="WebhookRequest")

    url: str = Field(
        max_length=2048,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
        description="Where to POST: an http(s) URL whose host is a public address "
        "(unless WEBHOOK_ALLOWED_HOSTS allows it).",
    )
    queues: list[str] = Field(
        min_length=1,
        max_length=MAX_SUBSCRIBED_QUEUES,
        description=f"The queues whose jobs' ends it receives (1 to {MAX_SUBSCRIBED_QUEUES}).",
        json_schema_extra={"items": {"type": "string", "pattern": QUEUE_NAME_PATTERN}},
    )
    events: list[HookEvent] = Field(
        default_factory=_all_events,
        min_length=1,
        description="Which ends (default: all three).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        check_url(url)
        return url

    @field_validator("queues")
    @classmethod
    def _queues(cls, queues: list[str]) -> list[str]:
        if not all(re.fullmatch(QUEUE_NAME_PATTERN, q) for q in queues):
            raise ValueError("each queue name is 1 to 64 of A-Z a-z 0-9 _ . : -")
        return queues
