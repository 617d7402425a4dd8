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

# pause_swarmd PID / resume_swarmd PID: SIGSTOP / SIGCONT a daemon (a peer that accepts TCP
# connections but never answers). Whatever is still paused is resumed at exit, before
# cleanup's SIGTERM, so that it stops gracefully.
PAUSED=()
pause_swarmd() { kill -STOP "$1" && PAUSED+=("$1"); }
resume_swarmd() {
    local p keep=()
    kill -CONT "$1" || return 1
    for p in "${PAUSED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PAUSED=("${keep[@]}")
}
cleanup_paused() {
    local p
    for p in "${PAUSED[@]}"; do kill -CONT "$p" 2>/dev/null; done
    cleanup
}
trap cleanup_paused EXIT

# start_swarmd_traced NAME ARGS...: start_swarmd with canonical/raft's own trace on
# (LIBRAFT_TRACE); its lines go to $T/NAME.raft, the rest of stderr to $T/NAME.log.
start_swarmd_traced() {
    local name=$1; shift
    LIBRAFT_TRACE=1 "$SWARMD" "$@" >"$T/$name.out" 2> >(
        tee >(grep --line-buffered '^LIBRAFT ' >"$T/$name.raft") |
            grep --line-buffered -v '^LIBRAFT ' >"$T/$name.log") &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# no_sanitizer_report LOG...: no ASan/LSan/UBSan report in any of the logs (under the ASan
# build a report aborts the daemon: its exit status says so too).
no_sanitizer_report() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || return 1
        if grep -q -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|==[0-9]+==ERROR' "$f"; then
            echo "--- sanitizer report in ${f##*/}:" >&2
            grep -m1 -A14 -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|==[0-9]+==ERROR' "$f" >&2
            return 1
        fi
    done
}

# leader_of I: the N of the manager (hostname mgr-N) that manager I lists as the raft leader.
leader_of() {
    ctlm "$1" node ls --format json 2>/dev/null | python3 -c '
import json, sys
ls = [n["hostname"] for n in json.load(sys.stdin) if n.get("manager_status") == "leader"]
if len(ls) != 1 or not ls[0].startswith("mgr-"): sys.exit(1)
print(ls[0][4:])' 2>/dev/null
}
