"""Periodic schedules in Redis: the registry and the exactly-once tick."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from jobsys import stamps
from jobsys.schedules import Schedule
from jobsys.store import keys
from jobsys.store.submission import Submission, job_arg, new_job_id
from jobsys.store.translate import translate_errors

if TYPE_CHECKING:
    from jobsys.store.store import Store


class ScheduleStore:
    """The schedules of one Redis, over a `Store`'s connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, schedule: Schedule) -> None:
        """Create or replace `schedule` (by name)."""
        self.put_all([schedule])

    def put_all(self, schedules: list[Schedule]) -> None:
        """Create or replace several schedules in one step."""
        if schedules:
            with translate_errors():
                self.store.redis.hset(
                    keys.schedules(), mapping={s.name: s.to_json() for s in schedules}
                )

    def delete(self, name: str) -> bool:
        """Remove a schedule and its last-tick record; False when there was none."""
        with translate_errors():
            found = self.store.redis.hget(keys.schedules(), name)
            if found is None:
                return False
            schedule = Schedule.from_json(str(found))
            # One transaction on a single Redis; on a cluster the two keys lie in two
            # slots: two idempotent commands.
            pipe = self.store.redis.pipeline(transaction=not self.store.cluster)
            pipe.hdel(keys.schedules(), name)
            pipe.delete(keys.last_tick(schedule.queue, name))
            pipe.execute()
        return True

    def all(self) -> list[Schedule]:
        """Every schedule, by name."""
        with translate_errors():
            raw = cast(dict[str, str], self.store.redis.hgetall(keys.schedules()))
        return [Schedule.from_json(raw[name]) for name in sorted(raw)]

    def now(self) -> datetime:
        """The Redis server's clock (the one every tick is measured by)."""
        with translate_errors():
            seconds, micros = self.store.redis.time()
        return datetime.fromtimestamp(seconds + micros / 1e6, UTC)

    def tick(self, schedule: Schedule, tick: datetime) -> str:
        """Enqueue the job of `tick` unless it was already: "enqueued", "seen" or "first"."""
        sub = Submission(schedule.task, schedule.payload)
        job_id = new_job_id(schedule.queue)
        job = job_arg(job_id, sub, self.store.settings.max_retries)
        with translate_errors():
            return self.store.scripts.tick(
                schedule.queue, schedule.name, stamps.epoch_ms(tick), job_id, job
            )
