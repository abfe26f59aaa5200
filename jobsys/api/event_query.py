"""The query of ``GET /events`` (api/events.py), apart so that the OpenAPI document
can describe it without importing the routes."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobsys.models import DEFAULT_QUEUE, QUEUE_NAME_PATTERN, never_null
from jobsys.store import EVENT_TYPES

#: Most queues one GET /events may follow.
MAX_QUEUES = 16

#: A Redis stream id, as `id:` carries it.
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
#: One queue name.
QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
_LIST_PATTERN = r"^[A-Za-z0-9_.:,-]{1,1100}$"


class EventsQuery(BaseModel):
    """The query of GET /events (other parameters are ignored)."""

    model_config = ConfigDict(frozen=True, json_schema_extra=never_null)

    queue: str = Field(
        DEFAULT_QUEUE,
        pattern=_LIST_PATTERN,
        description=f"The queue, or up to {MAX_QUEUES} queues separated by commas "
        "(default: `default`).",
    )
    types: str | None = Field(
        None,
        pattern=r"^[a-z_,]{1,200}$",
        description="Only events of these types, separated by commas (default: every type): "
        + ", ".join(EVENT_TYPES)
        + ".",
    )

    @field_validator("queue")
    @classmethod
    def _queues(cls, value: str) -> str:
        names = value.split(",")
        if len(names) > MAX_QUEUES:
            raise ValueError(f"at most {MAX_QUEUES} queues")
        if not all(QUEUE_NAME.fullmatch(n) for n in names):
            raise ValueError("each queue name is 1 to 64 of A-Z a-z 0-9 _ . : -")
        return value

    @field_validator("types")
    @classmethod
    def _types(cls, value: str | None) -> str | None:
        if value is not None and not set(value.split(",")) <= set(EVENT_TYPES):
            raise ValueError("each type must be one of " + ", ".join(EVENT_TYPES))
        return value

    def queues(self) -> list[str]:
        """The queues, without repeats, in the order given."""
        return list(dict.fromkeys(self.queue.split(",")))

    def type_set(self) -> frozenset[str] | None:
        """The types asked for (None: all)."""
        return frozenset(self.types.split(",")) if self.types else None
