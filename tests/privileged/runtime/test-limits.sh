# cgroup limits on this machine's layout (v1 or hybrid): memory (OOM kill reported as 137
# and said on stderr), pids (a fork bomb stopped), cpu (the CFS quota the host sees while
# the task runs); every cgroup removed after the task.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

if ! grep -q " - cgroup cgroup .*memory" /proc/self/mountinfo; then
    echo "skip: no v1 memory hierarchy here (the v2 path is test-cgroup-v2.sh)"
    exit 77
fi

v2_root=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
v2_before=$([ -n "$v2_root" ] && find "$v2_root" -maxdepth 3 -type d | sort)

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

# the same id twice: the second start is refused, the running task keeps its cgroup
watch_limits dup
first=$BG
first_id=$ID
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" -- "$P" exit 0 >"$T/out2" 2>"$T/err2"
rc2=$?
alive=$(pgrep -f "^$P sleep" | head -1)
procs=$(read_cg pids cgroup.procs)
if [ "$rc2" = 125 ] && [ -n "$alive" ] && [ "$procs" = "$alive" ]; then
    pass "a second task with a running task's id is refused (125: $(cat "$T/err2")); the first keeps its cgroup"
else
    fail "same id twice: second exit $rc2 ($(cat "$T/err2")), first task '$alive', its cgroup.procs '$procs'"
fi
stop_watch dup
expect_rc "the first task with that id ends normally afterwards" 143
if [ "$first_id" != "$ID" ] || [ "$first" != "$BG" ]; then
    fail "internal: watch state"
fi

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
if [ -n "$v2_root" ]; then
    v2_after=$(find "$v2_root" -maxdepth 3 -type d | sort)
    if [ "$v2_before" = "$v2_after" ]; then
        pass "hybrid layout: the v2 mount beside the v1 controllers ($v2_root) is left alone"
    else
        fail "the v2 mount $v2_root changed: $(diff <(echo "$v2_before") <(echo "$v2_after") | grep '^[<>]' | tr '\n' ' ')"
    fi
fi
finish
