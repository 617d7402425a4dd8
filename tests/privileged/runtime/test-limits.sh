# cgroup limits on this machine's layout (v1 or hybrid): memory (OOM kill reported as 137
# and said on stderr), pids (a fork bomb stopped), cpu (the CFS quota the host sees while
# the task runs); every cgroup removed after the task.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

if ! grep -q " - cgroup cgroup .*memory" /proc/self/mountinfo; then
    echo "skip: no v1 memory hierarchy here (the v2 path is test-cgroup-v2.sh)"
    exit 77
fi

run_task oom --rootfs "$ROOTFS" --limit-memory 32M -- "$P" oom
expect_rc "--limit-memory 32M, memory hog: exit 137" 137 "OOM"
if grep -q "^FAIL" "$T/out"; then
    fail "the hog was not killed: $(grep FAIL "$T/out")"
fi

run_task oom-sh --limit-memory 16M -- /bin/sh -c 'x=$(head -c 100M /dev/zero | tr "\0" a); exit 0'
expect_rc "--limit-memory 16M, /bin/sh holding 100M in a variable (default root)" 137 "OOM killer"

run_task pids --rootfs "$ROOTFS" --limit-pids 32 -- "$P" forkbomb 32
expect_probe_ok "--limit-pids 32: fork bomb stopped with EAGAIN ($(grep -o 'after [0-9]* forks' "$T/out"))"

run_task nolimit-oom --rootfs "$ROOTFS" -- "$P" exit 0
expect_rc "no limits: runs" 0

# the limits as the host sees them while the task runs
watch_limits() {
    local name=$1
    shift
    new_id "$name"
    "$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" "$@" -- "$P" sleep 30 >"$T/out" 2>"$T/err" &
    BG=$!
    BG_PIDS+=("$BG")
    for _ in $(seq 100); do
        grep -q sleeping "$T/out" 2>/dev/null && break
        sleep 0.05
    done
}
stop_watch() {
    kill -TERM "$BG"
    wait "$BG"
    RC=$?
    no_leaks "$1"
}
read_cg() { # CONTROLLER FILE
    local d
    d=$(task_cgroup_dir "$1")
    cat "$d/$2" 2>/dev/null || echo "missing:$d/$2"
}

watch_limits limits --limit-cpu 0.5 --limit-memory 64M --limit-pids 64
quota=$(read_cg cpu cpu.cfs_quota_us)
period=$(read_cg cpu cpu.cfs_period_us)
mem=$(read_cg memory memory.limit_in_bytes)
pids=$(read_cg pids pids.max)
pid_in=$(pgrep -f "^$P sleep" | head -1)
procs=$(read_cg pids cgroup.procs)
stop_watch limits
if [ "$quota/$period" = 50000/100000 ]; then
    pass "--limit-cpu 0.5: cpu.cfs_quota_us 50000 per 100000"
else
    fail "--limit-cpu 0.5: cfs quota/period $quota/$period"
fi
if [ "$mem" = 67108864 ]; then
    pass "--limit-memory 64M: memory.limit_in_bytes 67108864"
else
    fail "--limit-memory 64M: memory.limit_in_bytes $mem"
fi
if [ "$pids" = 64 ]; then
    pass "--limit-pids 64: pids.max 64"
else
    fail "--limit-pids 64: pids.max $pids"
fi
if [ -n "$pid_in" ] && [ "$procs" = "$pid_in" ]; then
    pass "the task (host pid $pid_in) is the only process in its cgroup"
else
    fail "cgroup.procs '$procs', task pid '$pid_in'"
fi
expect_rc "SIGTERM to run-task is passed to the task (its handler exits 128+15)" 143

watch_limits nolimits
quota=$(read_cg cpu cpu.cfs_quota_us)
mem=$(read_cg memory memory.limit_in_bytes)
pids=$(read_cg pids pids.max)
stop_watch nolimits
if [ "$quota" = -1 ] && [ "$pids" = max ] && [ "${#mem}" -ge 16 ]; then
    pass "no limit flags: quota -1, pids.max max, memory unlimited (still a cgroup per task)"
else
    fail "no limit flags: quota $quota, pids.max $pids, memory $mem"
fi
finish
