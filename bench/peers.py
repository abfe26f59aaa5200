"""Virtual environments for the peer systems, with pinned versions from PyPI.

The peers cannot share one environment: arq 0.28 needs redis-py < 6 while
celery's kombu needs redis-py >= 6.4, and saq's redis extra needs < 8. So each
peer gets its own venv under ``bench/.venv-peers/<system>/`` (gitignored), with
the system, redis-py and hiredis pinned (jobsys itself runs with hiredis, so
every peer parses replies with it too). A venv is reused when the pins it was
built with (``bench-pins.txt`` inside it) match; otherwise it is rebuilt.

``tools`` is one more venv, for matplotlib (the chart), so that the jobsys venv
gets nothing it does not need.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: Where the venvs live; BENCH_PEERS_DIR moves them (e.g. to a cache between CI runs).
VENVS = Path(os.environ.get("BENCH_PEERS_DIR") or ROOT / ".venv-peers")

#: The exact versions the benchmark runs (newest on PyPI when written).
PINS: dict[str, list[str]] = {
    "rq": ["rq==3.0.0", "redis==8.1.0", "hiredis==3.5.0"],
    "celery": ["celery[redis]==5.7.0", "kombu==5.7.0", "redis==8.1.0", "hiredis==3.5.0"],
    "dramatiq": ["dramatiq[redis]==2.2.1", "redis==8.1.0", "hiredis==3.5.0"],
    "huey": ["huey==3.5.4", "redis==8.1.0", "hiredis==3.5.0"],
    "saq": ["saq[redis]==0.26.4", "redis==7.4.1", "hiredis==3.5.0", "typing_extensions==4.16.0"],
    "arq": ["arq==0.28.0", "redis==5.3.1", "hiredis==3.5.0"],
    "tools": ["matplotlib==3.11.2"],
}


class PeerEnvError(RuntimeError):
    """A peer venv could not be built (no network, a pin that does not resolve, ...)."""


def python(name: str) -> Path:
    """The interpreter of venv `name` (which may not exist yet)."""
    return VENVS / name / "bin" / "python"


def ready(name: str) -> bool:
    """True when venv `name` exists and was built with the current pins."""
    marker = VENVS / name / "bench-pins.txt"
    return python(name).exists() and marker.exists() and marker.read_text() == _pins_text(name)


def ensure(name: str, *, quiet: bool = True) -> Path:
    """Build venv `name` unless it is ready; return its interpreter."""
    if ready(name):
        return python(name)
    path = VENVS / name
    print(f"bench: installing {name} into {path} ({' '.join(PINS[name])})", file=sys.stderr)
    venv.EnvBuilder(clear=True, with_pip=True).create(path)
    # Few retries and a short timeout: without network this fails in seconds, not minutes.
    cmd = [str(python(name)), "-m", "pip", "install", "--disable-pip-version-check"]
    cmd += ["--retries", "1", "--timeout", "15"]
    if quiet:
        cmd.append("--quiet")
    done = subprocess.run([*cmd, *PINS[name]], capture_output=quiet, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise PeerEnvError(f"pip install {' '.join(PINS[name])} failed: {last[0]}")
    (path / "bench-pins.txt").write_text(_pins_text(name))
    return python(name)


def freeze(name: str) -> list[str]:
    """`pip freeze` of venv `name` (recorded in the results)."""
    done = subprocess.run(
        [str(python(name)), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.split()


def _pins_text(name: str) -> str:
    return "\n".join(PINS[name]) + "\n"


if __name__ == "__main__":
    # python -m bench.peers [NAME ...]: build (or check) the venvs.
    for n in sys.argv[1:] or list(PINS):
        print(n, ensure(n, quiet=False))
