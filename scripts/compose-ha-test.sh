#!/usr/bin/env bash
# compose-ha-test.sh: test docker-compose.ha.yml end to end: stopping the Redis primary's
# container keeps jobs flowing.
#
# Starts the private Docker engine of shared/docker/engine.sh (as scripts/compose-test.sh
# does), brings up the HA stack (primary, two replicas, three Sentinels, the API, two
# workers), then, while jobs are submitted over HTTP at ~20/s:
#   - `docker compose stop redis-1` (the primary);
#   - the Sentinels name another node; submits are accepted again within 15 s;
#   - every accepted job completes (REDIS_WAIT_REPLICAS=1 in the stack: none is lost);
#   - no submit gets a 500.
# It always tears the stack down (`down -v`), and stops the engine if it started it.
#
# Exit: 0 pass, 1 fail, 77 skip ("SKIP: docker engine cannot start here: <reason>").
# Environment: JOBSYS_ENGINE_SH (default <repo>/../shared/docker/engine.sh).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE_SH=${JOBSYS_ENGINE_SH:-$REPO/../shared/docker/engine.sh}
PROJECT=jobsys-ha-test
export JOBSYS_IMAGE=jobsys-test:local
TMP=$(mktemp -d)
T0=$(date +%s)
STARTED_ENGINE=0
ENGINE_UP=0
STACK_UP=0

log() { echo "compose-ha-test: $*" >&2; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: docker engine cannot start here: $*"; exit 77; }
# shellcheck source=scripts/compose-engine.sh
. "$REPO/scripts/compose-engine.sh"
dc() {
  docker compose -p "$PROJECT" -f "$REPO/docker-compose.ha.yml" \
    -f "$REPO/tests/compose/docker-compose.ha-test.yml" "$@"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$STACK_UP" = 1 ]; then
    if [ "$rc" = 1 ]; then
      log "logs of the stack (last 40 lines per container):"
      dc logs --no-color --tail 40 >&2 2>&1
    fi
    dc down -v --remove-orphans -t 10 >"$TMP/down.log" 2>&1 || cat "$TMP/down.log" >&2
    docker image prune -f >/dev/null 2>&1
  fi
  if [ "$STARTED_ENGINE" = 1 ] && [ "$ENGINE_UP" = 1 ]; then
    engine stop >"$TMP/stop.log" 2>&1 || cat "$TMP/stop.log" >&2
  fi
  rm -rf "$TMP"
  [ "$rc" = 0 ] && log "PASS in $(($(date +%s) - T0)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_engine  # scripts/compose-engine.sh
for spec in python:3.13-slim:python redis:7-alpine:redis; do
  tag=${spec%:*}
  engine stand-in "$tag" "${spec##*:}" >/dev/null 2>"$TMP/stand-in.log" || {
    cat "$TMP/stand-in.log" >&2
    skip "cannot build the stand-in image $tag"
  }
done
grep -q '^FROM python:3.13-slim' "$REPO/Dockerfile" || fail "the Dockerfile's FROM changed: update the stand-ins here"

STACK_UP=1
dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
dc up --build -d --scale worker=2 >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; fail "docker compose up failed"; }
log "stack up after $(($(date +%s) - T0)) s"
API=http://$(dc port api 5001) || fail "the api service publishes no port for 5001"

python3 - "$API" "$PROJECT" "$REPO" <<'EOF' || fail "jobs through a failover"
"""Submit at ~20/s; stop the primary's container; check that writes come back and
every accepted job completes."""
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

api, project, repo = sys.argv[1:4]
DC = ["docker", "compose", "-p", project, "-f", f"{repo}/docker-compose.ha.yml",
      "-f", f"{repo}/tests/compose/docker-compose.ha-test.yml"]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


deadline = time.monotonic() + 90
while call("GET", "/health")[0] != 200 or call("POST", "/submit", {"task": "warmup"})[0] != 202:
    if time.monotonic() > deadline:
        sys.exit("the stack did not take submits within 90 s")
    time.sleep(0.5)

accepted, answers, stop = [], [], threading.Event()


def produce():
    while not stop.is_set():
        t = time.monotonic()
        status, body = call("POST", "/submit", {"task": "ha"})
        answers.append((t, status))
        if status == 202:
            accepted.append((t, body["id"]))
        time.sleep(0.05)


thread = threading.Thread(target=produce, daemon=True)
thread.start()
time.sleep(5)
before = len(accepted)
stopped_at = time.monotonic()
subprocess.run([*DC, "stop", "redis-1"], check=True, capture_output=True)
print(f"compose-ha-test: redis-1 stopped ({before} jobs accepted before)", file=sys.stderr)
time.sleep(25)
stop.set()
thread.join(10)

back = [t for t, _ in accepted if t > stopped_at]
if not back:
    sys.exit("no submit was accepted after the primary stopped")
gap = max(b - a for a, b in zip([stopped_at] + [t for t, _ in accepted if t > stopped_at],
                                [t for t, _ in accepted if t > stopped_at]))
codes = {}
for _, status in answers:
    codes[status] = codes.get(status, 0) + 1
print(f"compose-ha-test: answers {codes}; longest gap in accepted submits after the stop "
      f"{gap:.1f} s", file=sys.stderr)
if gap > 15:
    sys.exit(f"writes were gone for {gap:.1f} s (want < 15 s)")
if 500 in codes:
    sys.exit(f"{codes[500]} submits got a 500")

sentinel = subprocess.run(
    [*DC, "exec", "-T", "sentinel-1", "redis-cli", "-p", "26379", "sentinel",
     "get-master-addr-by-name", "mymaster"], check=True, capture_output=True, text=True
).stdout.split()
print(f"compose-ha-test: the Sentinels name {sentinel}", file=sys.stderr)
if not sentinel or sentinel[0] == "redis-1":
    sys.exit(f"the Sentinels still name redis-1: {sentinel}")

pending, deadline = {i for _, i in accepted}, time.monotonic() + 120
while pending and time.monotonic() < deadline:
    for job_id in sorted(pending):
        status, job = call("GET", f"/jobs/{job_id}")
        if status == 404:
            sys.exit(f"accepted job {job_id} was lost")
        if status == 200 and job["status"] == "completed":
            pending.discard(job_id)
    time.sleep(0.5)
if pending:
    sys.exit(f"{len(pending)} of {len(accepted)} accepted jobs not completed after 120 s")
print(f"compose-ha-test: all {len(accepted)} accepted jobs completed", file=sys.stderr)
EOF
