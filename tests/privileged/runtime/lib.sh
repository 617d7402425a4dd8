# Shared helpers for the run-task privileged tests (sourced): root check, a temp dir with
# a minimal rootfs holding the static probe, running tasks, pass/fail counting, and the
# "nothing left behind" checks after every run.
set -u

if [ "$(id -u)" != 0 ]; then
    echo "skip: needs root"
    exit 77
fi
: "${SWARMD:?SWARMD must name the swarmd binary}"
: "${PROBE:?PROBE must name the static probe}"

T=$(mktemp -d /tmp/rt-priv.XXXXXX)
TAG=$(basename "$T" | tr -c 'A-Za-z0-9\n' '-') # unique per script: names ids and the probe
PROBE_NAME="probe-$TAG"
ROOTFS="$T/rootfs"
PASS=0
FAILS=0
BG_PIDS=()

# On exit (also on a timeout's SIGTERM): kill the tasks first so run-task reaps them and
# removes their cgroups itself, then run-task, then whatever cgroup is still left.
cleanup() {
    local p d
    pkill -KILL -f "^(/tmp)?/$PROBE_NAME" 2>/dev/null
    for p in "${BG_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    find /sys/fs/cgroup -maxdepth 8 -depth -type d -name "rt-*-$TAG" 2>/dev/null |
        while read -r d; do rmdir "$d" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

pass() {
    PASS=$((PASS + 1))
    echo "ok - $*"
}
fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL - $*"
}

# A bare rootfs: the static probe at /PROBE_NAME, the mount points a task needs.
mkdir -p "$ROOTFS"/{proc,dev,sys,tmp,run,etc,work}
cp "$PROBE" "$ROOTFS/$PROBE_NAME"
chmod 0755 "$ROOTFS/$PROBE_NAME"
P="/$PROBE_NAME" # the probe as the task sees it in $ROOTFS

# The task id of run NAME (names are unique within a script): "rt-NAME-TAG", so a
# script can compute it before the run (new_id NAME; echo $ID).
new_id() {
    ID="rt-$1-$TAG"
    ID=${ID:0:64}
}

# run_task NAME [swarmd flags...] -- CMD...: runs with --id, sets RC, OUT ($T/out), ERR
# ($T/err); then checks nothing of the task is left.
run_task() {
    local name=$1
    shift
    new_id "$name"
    "$SWARMD" run-task --id "$ID" "$@" >"$T/out" 2>"$T/err" </dev/null
    RC=$?
    no_leaks "$name"
}

# The probe in the default root (which holds only the host's system dirs): /bin/sh copies
# it from stdin into the task's /tmp and execs it, so it is still pid 1.
run_default_root() {
    local name=$1
    shift
    local flags=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        flags+=("$1")
        shift
    done
    shift
    new_id "$name"
    "$SWARMD" run-task --id "$ID" "${flags[@]}" -- /bin/sh -c \
        'cat > /tmp/'"$PROBE_NAME"' && chmod 0755 /tmp/'"$PROBE_NAME"' && exec /tmp/'"$PROBE_NAME"' "$@"' \
        sh "$@" <"$PROBE" >"$T/out" 2>"$T/err"
    RC=$?
    no_leaks "$name"
}

show_output() {
    sed 's/^/    | /' "$T/out" "$T/err" | head -60
}

# The probe ran and every check passed (exit 0, no FAIL line, at least one ok line).
expect_probe_ok() {
    local name=$1
    if [ "$RC" = 0 ] && ! grep -q '^FAIL' "$T/out" && grep -q '^ok' "$T/out"; then
        pass "$name ($(grep -c '^ok' "$T/out") probe checks)"
    else
        fail "$name: exit $RC"
        show_output
    fi
}

# expect_rc NAME CODE [STDERR-REGEX]
expect_rc() {
    local name=$1 code=$2 re=${3:-}
    if [ "$RC" != "$code" ]; then
        fail "$name: exit $RC, expected $code"
        show_output
    elif [ -n "$re" ] && ! grep -Eq "$re" "$T/err"; then
        fail "$name: stderr does not match /$re/"
        show_output
    else
        pass "$name (exit $RC${re:+, stderr /$re/})"
    fi
}

# The stderr of a failed start is one line.
expect_one_line_error() {
    local name=$1 n
    n=$(wc -l <"$T/err")
    if [ "$n" = 1 ]; then
        pass "$name: one-line error: $(cat "$T/err")"
    else
        fail "$name: $n lines on stderr"
        show_output
    fi
}

# The host's cgroup directory of task $ID for a v1 controller ("" if none).
task_cgroup_dir() {
    local ctrl=$1 self
    self=$(awk -F: -v c="$ctrl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' /proc/self/cgroup)
    self=${self%/}
    echo "/sys/fs/cgroup/$ctrl$self/swarmd/$ID"
}

# After a run: no mount of the task in the host's mount table, no cgroup directory named
# after it in any hierarchy, no process of it.
no_leaks() {
    local name=$1 left
    if grep -E "/run/swarmd/|$T" /proc/self/mountinfo >"$T/leak"; then
        fail "$name: mounts left on the host:"
        sed 's/^/    | /' "$T/leak"
    fi
    left=$(find /sys/fs/cgroup -maxdepth 8 -type d -name "$ID" 2>/dev/null)
    if [ -n "$left" ]; then
        fail "$name: cgroup left: $left"
    fi
    if pgrep -f "$PROBE_NAME" >"$T/leak"; then
        fail "$name: processes left: $(tr '\n' ' ' <"$T/leak")"
    fi
}

# Namespace inodes of this (host) process: "pid=123 mnt=456 ..." with OP between.
host_ns() {
    local op=$1 ns out=()
    for ns in "${@:2}"; do
        out+=("$ns$op$(stat -L -c %i /proc/self/ns/"$ns")")
    done
    echo "${out[@]}"
}

finish() {
    echo "# $PASS passed, $FAILS failed"
    [ "$FAILS" = 0 ]
    exit $?
}
