# shellcheck shell=bash
# Sourced by scripts/compose-test.sh and scripts/compose-ha-test.sh: start_engine starts the
# private Docker engine of shared/docker/engine.sh (or uses the one running), as both need it.
# Uses the caller's ENGINE_SH, TMP and skip(); sets STARTED_ENGINE (1: this run started it, so
# it stops it) and ENGINE_UP, and exports the engine's DOCKER_HOST.

engine() { bash "$ENGINE_SH" "$@"; }  # bash: shared/ may be a copy without the exec bits

# `engine.sh stop` returns once dockerd has exited, but until PID 1 reaps it the zombie still
# counts for start's "another dockerd runs" check; so a start right after a stop (the other
# compose test's) waits for that.
zombie_dockerd() {
  local pid
  pid=$(sed -nE 's/.*another dockerd runs \(pid ([0-9]+)\).*/\1/p' "$TMP/start.log")
  [ -n "$pid" ] && { [ ! -e "/proc/$pid" ] || grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status"; }
}

start_engine() {
  [ -f "$ENGINE_SH" ] || skip "engine.sh not found at $ENGINE_SH (set JOBSYS_ENGINE_SH)"
  engine status >/dev/null 2>&1 || STARTED_ENGINE=1
  local exports=
  for _ in $(seq 60); do
    if exports=$(engine start 2>"$TMP/start.log"); then break; fi
    exports=
    if ! zombie_dockerd; then break; fi
    sleep 0.5
  done
  if [ -z "$exports" ]; then
    cat "$TMP/start.log" >&2
    skip "$(grep -v '^[[:space:]]*$' "$TMP/start.log" | tail -n 1 | sed 's/^engine.sh: //')"
  fi
  ENGINE_UP=1
  cat "$TMP/start.log" >&2
  eval "$exports"
  # Debian's client matches the engine's API version and needs no buildx; another `docker`
  # found first on PATH also works, so it is only a preference.
  if [ -x /usr/bin/docker ]; then docker() { /usr/bin/docker "$@"; }; fi
}
