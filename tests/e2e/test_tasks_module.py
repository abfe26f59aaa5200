"""`jobsys worker --tasks MODULE` finds a tasks module in the directory it runs in."""

from __future__ import annotations

import signal
from pathlib import Path

from jobsys.store import Store

from processes import Proc, wait_for

TASKS = """
from jobsys import task

@task("double")
def double(payload):
    return payload * 2
"""


def test_a_tasks_module_in_the_current_directory_is_loaded(
    tmp_path: Path, env: dict[str, str], store: Store
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mytasks.py").write_text(TASKS)
    worker = Proc(["worker", "--tasks", "mytasks"], env, tmp_path / "worker.log", cwd=project)
    try:
        job_id = store.submit("double", 21)
        wait_for(lambda: store.get(job_id).status == "completed", 15, what="completed")
        assert store.get(job_id).result == 42
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0
    finally:
        worker.stop()
