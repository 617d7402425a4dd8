# The cgroup v2 path as far as this machine allows. In a private mount namespace a
# cgroup2 mount is put on /sys/fs/cgroup, so run-task detects a pure v2 layout. On a
# machine whose memory/cpu/pids controllers are bound to v1 hierarchies (the hybrid
# layout here) the unified hierarchy has none of them: run-task must refuse at start with
# one line naming the missing controller (exit 125) and leave nothing behind. On a real
# v2 machine (controllers present) the task runs and its limits are read back.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

v2_root=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
if [ -z "$v2_root" ]; then
    echo "skip: no cgroup2 mount on this machine"
    exit 77
fi
before=$(find "$v2_root" -maxdepth 3 -type d | sort)

new_id v2
cat >"$T/in-ns.sh" <<'SH'
set -u
mount --make-rprivate / || exit 90
if ! grep -q " /sys/fs/cgroup cgroup2 " <(awk '{print " "$5" "$9" "}' /proc/self/mountinfo); then
    mount -t cgroup2 none /sys/fs/cgroup || exit 91
fi
cat /sys/fs/cgroup/cgroup.controllers >"$T/controllers"
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" --limit-memory 64M --limit-pids 64 \
    --limit-cpu 0.5 -- "$P" sleep 2 >"$T/out" 2>"$T/err" &
bg=$!
for _ in $(seq 100); do grep -q sleeping "$T/out" 2>/dev/null && break; kill -0 $bg 2>/dev/null || break; sleep 0.05; done
d=$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup)
d=/sys/fs/cgroup${d%/}
for f in memory.max pids.max cpu.max; do
    echo "$f $(cat "$(find "$d" -maxdepth 4 -type d -name "$ID" | head -1)/$f" 2>/dev/null)"
done >"$T/limits"
wait $bg
rc=$?
if grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    "$SWARMD" run-task --id "$ID-oom" --rootfs "$ROOTFS" --limit-memory 32M -- "$P" oom \
        >/dev/null 2>"$T/oom.err"
    echo $? >"$T/oom.rc"
fi
exit $rc
SH
export T ID ROOTFS P SWARMD
unshare -m bash "$T/in-ns.sh"
RC=$?
no_leaks v2
ctrls=$(cat "$T/controllers" 2>/dev/null)
echo "# unified hierarchy controllers: '$ctrls'"

if [[ " $ctrls " == *" memory "* && " $ctrls " == *" pids "* && " $ctrls " == *" cpu "* ]]; then
    expect_probe_ok "cgroup v2: a task with limits runs"
    if grep -qx "memory.max 67108864" "$T/limits" && grep -qx "pids.max 64" "$T/limits" &&
        grep -qx "cpu.max 50000 100000" "$T/limits"; then
        pass "cgroup v2: memory.max, pids.max, cpu.max read back"
    else
        fail "cgroup v2 limits: $(tr '\n' ';' <"$T/limits")"
    fi
    if [ "$(cat "$T/oom.rc")" = 137 ] && grep -q "OOM killer" "$T/oom.err"; then
        pass "cgroup v2: the memory hog is killed at 32M and reported as OOM"
    else
        fail "cgroup v2 OOM: exit $(cat "$T/oom.rc"): $(cat "$T/oom.err")"
    fi
else
    expect_rc "cgroup v2 without the memory controller: refused at start" 125 \
        "cgroup v2: the (memory|cpu|pids) controller is not available"
    expect_one_line_error "cgroup v2 refusal"
fi
after=$(find "$v2_root" -maxdepth 3 -type d | sort)
if [ "$before" = "$after" ]; then
    pass "cgroup v2: the unified hierarchy is as it was"
else
    fail "cgroup v2: directories changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | tr '\n' ' ')"
fi
finish
