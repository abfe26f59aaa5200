#!/usr/bin/env bash
# compose-test.sh: test the Docker Compose stack on this machine, end to end.
#
# Starts the private Docker engine of shared/docker/engine.sh (Docker Hub is unreachable here, so
# it builds local stand-ins for the images the Dockerfile and docker-compose.yml name), brings the
# stack up with 3 workers, submits jobs over HTTP and checks that:
#   - every job completes, and each of the 3 worker containers ran some;
#   - the API container is healthy and runs as a non-root user;
#   - the 3 worker containers are running and have not restarted;
#   - Redis runs with appendonly on, its /data on a named volume;
#   - `docker compose stop` is prompt (SIGTERM reaches the processes; nothing waits for SIGKILL).
# It always tears the stack down (`down -v`), and stops the engine if it started it.
#
# The test stack is the compose project `jobsys-test`, image jobsys-test:local, with
# tests/compose/docker-compose.test.yml on top: the API on a free loopback port, Redis
# unpublished, so a stack the user runs on 5001/6379 (and its image) is left alone.
#
# Exit: 0 pass, 1 fail, 77 skip ("SKIP: docker engine cannot start here: <reason>").
# Environment:
#   JOBSYS_ENGINE_SH     path of engine.sh (default: <repo>/../shared/docker/engine.sh)
#   JOBSYS_COMPOSE_JOBS  jobs to submit (default 12)
#   JOBSYS_STOP_LIMIT_S  longest `docker compose stop` may take (default 6)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE_SH=${JOBSYS_ENGINE_SH:-$REPO/../shared/docker/engine.sh}
PROJECT=jobsys-test
export JOBSYS_IMAGE=jobsys-test:local  # leave the user's jobsys:local alone
WORKERS=3
JOBS=${JOBSYS_COMPOSE_JOBS:-12}
STOP_LIMIT_S=${JOBSYS_STOP_LIMIT_S:-6}

TMP=$(mktemp -d)
T0=$(date +%s.%N)
T_PHASE=$T0
STARTED_ENGINE=0
ENGINE_UP=0
STACK_UP=0

log() { echo "compose-test: $*" >&2; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: docker engine cannot start here: $*"; exit 77; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase() {  # logs how long the phase that just ended took
  log "$(printf '%-44s %6s s' "$1" "$(elapsed "$T_PHASE")")"
  T_PHASE=$(date +%s.%N)
}

# shellcheck source=scripts/compose-engine.sh
. "$REPO/scripts/compose-engine.sh"
dc() {
  docker compose -p "$PROJECT" -f "$REPO/docker-compose.yml" \
    -f "$REPO/tests/compose/docker-compose.test.yml" "$@"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$STACK_UP" = 1 ]; then
    if [ "$rc" = 1 ]; then
      log "logs of the stack (last 60 lines per container):"
      dc logs --no-color --tail 60 >&2 2>&1
    fi
    dc down -v --remove-orphans -t 10 >"$TMP/down.log" 2>&1 || { log "compose down failed:"; cat "$TMP/down.log" >&2; }
    # Old builds of the app image lose their tag on each rebuild; give their layers back.
    docker image prune -f >/dev/null 2>&1
  fi
  if [ "$STARTED_ENGINE" = 1 ] && [ "$ENGINE_UP" = 1 ]; then
    engine stop >"$TMP/stop.log" 2>&1 || { log "engine.sh stop failed:"; cat "$TMP/stop.log" >&2; }
  fi
  [ "$STACK_UP" = 1 ] && phase "teardown"
  rm -rf "$TMP"
  [ "$rc" = 0 ] && log "PASS in $(elapsed "$T0") s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the engine --------------------------------------------------------------------------------
start_engine  # scripts/compose-engine.sh
phase "engine start"

# One stand-in per FROM of the Dockerfile and per image: of the compose file that comes from a
# registry (not the ${JOBSYS_IMAGE...} that Compose builds).
mapfile -t tags < <({
  sed -nE 's/^FROM[[:space:]]+([^[:space:]]+).*/\1/p' "$REPO/Dockerfile"
  sed -nE 's/^[[:space:]]+image:[[:space:]]*"?([^"$[:space:]]+)"?[[:space:]]*(#.*)?$/\1/p' \
    "$REPO/docker-compose.yml"
} | sort -u)
for tag in "${tags[@]}"; do
  kind=${tag%%:*}
  case $kind in python | redis | debian) ;; *) fail "no stand-in kind for image $tag" ;; esac
  if ! engine stand-in "$tag" "$kind" 2>"$TMP/stand-in.log"; then
    cat "$TMP/stand-in.log" >&2
    skip "cannot build the stand-in image $tag: $(tail -n 1 "$TMP/stand-in.log" | sed 's/^engine.sh: //')"
  fi
done
phase "stand-in images (${tags[*]})"

# --- the stack ---------------------------------------------------------------------------------
STACK_UP=1
dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true  # leftovers of an interrupted run
dc up --build -d --scale worker="$WORKERS" >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; fail "docker compose up failed"; }
phase "compose up --build -d --scale worker=$WORKERS"

api_addr=$(dc port api 5001) || fail "the api service publishes no port for 5001"
API=http://$api_addr
answered=0
for _ in $(seq 120); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "$API/health" 2>/dev/null; then answered=1; break; fi
  sleep 0.5
done
[ "$answered" = 1 ] || fail "GET $API/health did not answer 200 within 60 s"
phase "GET $API/health answers"

# --- checks ------------------------------------------------------------------------------------
mapfile -t worker_cids < <(dc ps -q --status running worker)
[ "${#worker_cids[@]}" = "$WORKERS" ] || fail "${#worker_cids[@]} worker containers running, want $WORKERS"
worker_hosts=()
for cid in "${worker_cids[@]}"; do
  read -r host restarts < <(docker inspect -f '{{.Config.Hostname}} {{.RestartCount}}' "$cid")
  [ "$restarts" = 0 ] || fail "worker container $host restarted $restarts times"
  worker_hosts+=("$host")
done
log "worker containers running: ${worker_hosts[*]}"

api_uid=$(dc exec -T api id -u)
[ "$api_uid" != 0 ] || fail "the api container runs as root"

python3 - "$API" "$JOBS" "${worker_hosts[@]}" <<'EOF' || fail "jobs over HTTP"
"""Submit jobs over HTTP, wait until all complete, check every worker container ran some."""
import json
import sys
import time
import urllib.error
import urllib.request

api, n_jobs, hosts = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


ids = []
for i in range(n_jobs):
    status, body = call("POST", "/submit", {"task": f"compose-smoke-{i}"})
    if status != 202 or body.get("status") != "queued" or not body.get("id"):
        sys.exit(f"POST /submit: {status} {body}")
    ids.append(body["id"])

pending, done, deadline = set(ids), {}, time.monotonic() + 60
while pending and time.monotonic() < deadline:
    for job_id in sorted(pending):
        status, job = call("GET", f"/jobs/{job_id}")
        if status != 200:
            sys.exit(f"GET /jobs/{job_id}: {status} {job}")
        if job["status"] == "failed":
            sys.exit(f"job {job_id} failed: {job}")
        if job["status"] == "completed":
            pending.discard(job_id)
            done[job_id] = job
    time.sleep(0.2)
if pending:
    sys.exit(f"{len(pending)} of {n_jobs} jobs not completed after 60 s")

by_host = {}
for job in done.values():
    by_host.setdefault(job["worker"].split(":")[0], []).append(job["id"])
print(f"compose-test: {n_jobs} jobs completed; per worker host: "
      + ", ".join(f"{h}={len(v)}" for h, v in sorted(by_host.items())), file=sys.stderr)
if set(by_host) != hosts:
    sys.exit(f"jobs ran on {sorted(by_host)}, want each of the worker containers {sorted(hosts)}")
EOF
phase "$JOBS jobs submitted and completed"

# Checked after the jobs, since Docker runs the first healthcheck only an interval after start.
api_cid=$(dc ps -q api)
for _ in $(seq 120); do
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$api_cid")
  [ "$health" = healthy ] && break
  sleep 0.5
done
[ "$health" = healthy ] || fail "api container is '$health', not healthy, after 60 s"
phase "api container healthy"

aof=$(dc exec -T redis redis-cli config get appendonly | tail -n 1 | tr -d '\r')
[ "$aof" = yes ] || fail "Redis appendonly is '$aof', want yes"
fsync=$(dc exec -T redis redis-cli config get appendfsync | tail -n 1 | tr -d '\r')
[ "$fsync" = everysec ] || fail "Redis appendfsync is '$fsync', want everysec"
data_mount=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Type}}{{end}}{{end}}' "$(dc ps -q redis)")
[ "$data_mount" = volume ] || fail "Redis /data is '${data_mount:-not mounted}', want a named volume"
phase "redis: appendonly yes, everysec, /data volume"

t_stop=$(date +%s.%N)
dc stop >"$TMP/stop.log" 2>&1 || { cat "$TMP/stop.log" >&2; fail "docker compose stop failed"; }
stop_s=$(elapsed "$t_stop")
codes=$(dc ps -a --format '{{.Service}}={{.ExitCode}}' | sort | tr '\n' ' ')
log "exit codes after stop: $codes"
awk -v s="$stop_s" -v l="$STOP_LIMIT_S" 'BEGIN { exit !(s < l) }' \
  || fail "docker compose stop took $stop_s s, want < $STOP_LIMIT_S s (is SIGTERM handled?)"
case " $codes" in *=137\ *) fail "a container was SIGKILLed at stop: $codes" ;; esac
phase "compose stop ($stop_s s, limit $STOP_LIMIT_S s)"
