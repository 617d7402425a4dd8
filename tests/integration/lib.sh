# Shared helpers for integration tests: temp state dirs, swarmd processes on loopback,
# cleanup on every exit path. Source it; needs SWARMD, SWARMCTL (and PROBE) in the env.
set -u
set -o pipefail

: "${SWARMD:?SWARMD must point at the swarmd binary}"
: "${SWARMCTL:?SWARMCTL must point at the swarmctl binary}"

T=$(mktemp -d /tmp/swarmd-it.XXXXXX)
PIDS=()
FAILS=0

cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
# A daemon that aborts (a sanitizer report) fails the test even when no check looked.
pass() { echo "ok: $*"; }
check() { # check DESCRIPTION CMD... : CMD must succeed
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
    if [ "$FAILS" -gt 0 ]; then
        for f in "$T"/*.log; do # the daemons' side of the story
            [ -f "$f" ] || continue
            echo "--- ${f##*/} (last lines)" >&2
            tail -n 25 "$f" >&2
        done
        echo "$FAILS check(s) failed" >&2
        exit 1
    fi
    exit 0
}

# start_swarmd NAME ARGS... : runs swarmd in the background; logs in $T/NAME.log,
# stdout in $T/NAME.out; sets LAST_PID and adds it to PIDS.
start_swarmd() {
    local name=$1; shift
    "$SWARMD" "$@" >"$T/$name.out" 2>"$T/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_ready SOCKET PID: until `swarmctl node ls` answers (10 s at most).
wait_ready() {
    local sock=$1 pid=$2
    for _ in $(seq 200); do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        "$SWARMCTL" -H "unix://$sock" node ls -q >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# stop_swarmd PID: SIGTERM and wait; returns swarmd's exit status.
stop_swarmd() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
}

ctl() { "$SWARMCTL" -H "unix://$SOCK" "$@"; }

# listen_addr LOG: the TCP address swarmd reported it is listening on.
listen_addr() {
    sed -n 's/.*listening on \([0-9.:]*\) .*/\1/p' "$1" | tail -n 1
}

# has TEXT PATTERN: TEXT contains the grep pattern (safe for any quotes in TEXT).
has() { grep -q -- "$2" <<<"$1"; }
hasnt() { ! grep -q -- "$2" <<<"$1"; }

# until_ok SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.1 s).
until_ok() {
    local s=$1; shift
    for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}

# Several managers, each with its state dir at $T/mI.
sock() { echo "$T/m$1/swarmd.sock"; }
ctlm() { local i=$1; shift; "$SWARMCTL" -H "unix://$(sock "$i")" "$@"; }
# managers_ready I N: manager I lists N Ready managers with one leader.
managers_ready() {
    ctlm "$1" node ls --format json 2>/dev/null | python3 -c '
import json, sys
ns = [n for n in json.load(sys.stdin) if n["role"] == "manager"]
ok = len(ns) == int(sys.argv[1]) and all(n["status"] == "ready" for n in ns)
ok = ok and sum(n["manager_status"] == "leader" for n in ns) == 1
sys.exit(0 if ok else 1)' "$2" 2>/dev/null
}
