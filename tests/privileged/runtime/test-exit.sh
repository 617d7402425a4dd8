# Exit codes and stdio: the task's status, 128+N on a signal, docker's 125/126/127 for a
# start failure with a one-line error naming the step, stdin/stdout/stderr pass-through;
# nothing left after any of them.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

run_task exit3 --rootfs "$ROOTFS" -- "$P" exit 3
expect_rc "exit 3 -> 3" 3
run_task exit0 --rootfs "$ROOTFS" -- "$P" exit 0
expect_rc "exit 0 -> 0" 0
run_task exit255 -- /bin/sh -c 'exit 255'
expect_rc "exit 255 -> 255" 255
run_task probefail --rootfs "$ROOTFS" -- "$P" hostname not-this-one
expect_rc "a failing probe check -> 1" 1

# killed from outside: SIGKILL to the task's host pid
new_id killed
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" -- "$P" sleep 30 >"$T/out" 2>"$T/err" &
BG=$!
BG_PIDS+=("$BG")
for _ in $(seq 100); do grep -q sleeping "$T/out" 2>/dev/null && break; sleep 0.05; done
hp=$(pgrep -f "^$P sleep" | head -1)
[ -n "$hp" ] && kill -KILL "$hp"
wait "$BG"
RC=$?
no_leaks killed
expect_rc "SIGKILL from outside -> 137, not reported as OOM" 137
if grep -q OOM "$T/err"; then
    fail "a plain SIGKILL reported as OOM: $(cat "$T/err")"
fi

new_id int
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" -- "$P" sleep 30 >"$T/out" 2>"$T/err" &
BG=$!
BG_PIDS+=("$BG")
for _ in $(seq 100); do grep -q sleeping "$T/out" 2>/dev/null && break; sleep 0.05; done
kill -INT "$BG"
wait "$BG"
RC=$?
no_leaks int
# run-task forwards SIGINT; the probe (pid 1: only handled signals reach it) exits 128+2
expect_rc "SIGINT to run-task is passed to the task -> 130" 130
grep -q "got signal 02" "$T/out" || fail "the task did not report SIGINT: $(cat "$T/out")"

# a task without handlers (pid 1 does not get TERM/INT then): a second SIGTERM to
# run-task kills it
new_id term2
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" -- "$P" pause 30 >"$T/out" 2>"$T/err" &
BG=$!
BG_PIDS+=("$BG")
for _ in $(seq 100); do grep -q sleeping "$T/out" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$BG"
sleep 0.3
if kill -0 "$BG" 2>/dev/null; then
    pass "a task with no SIGTERM handler keeps running after one SIGTERM to run-task"
else
    fail "the task ended on one SIGTERM although it has no handler"
fi
start=$(date +%s%N)
kill -TERM "$BG"
wait "$BG"
RC=$?
ms=$((($(date +%s%N) - start) / 1000000))
no_leaks term2
expect_rc "a second SIGTERM kills it -> 137 (${ms} ms)" 137
[ "$ms" -lt 3000 ] || fail "the second SIGTERM took ${ms} ms"

run_task missing --rootfs "$ROOTFS" -- /bin/nope
expect_rc "missing binary -> 127, naming exec" 127 "exec.*/bin/nope"
expect_one_line_error "missing binary"

run_task notexec --rootfs "$ROOTFS" -- /etc
expect_rc "a directory as the command -> 126" 126 "exec"

run_task pathmiss -- no-such-command-here
expect_rc "a name not on PATH -> 127" 127 "exec no-such-command-here"

run_task badroot --rootfs "$T/no-such-root" -- "$P" pid1
expect_rc "bad --rootfs -> 125 naming the rootfs" 125 "rootfs.*no-such-root"
expect_one_line_error "bad --rootfs"

run_task badseccomp --rootfs "$ROOTFS" --seccomp "$T/no-such-profile.json" -- "$P" pid1
expect_rc "missing --seccomp file -> 125" 125 "seccomp.*no-such-profile"

run_task badid --id 'a/b' -- /bin/true
expect_rc "bad --id -> 125" 125 "id"

run_task usage -- 
expect_rc "no command -> 2 (usage)" 2 "command"

# stdio pass-through
new_id stdio
printf 'hello\nworld\n' | "$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" -- "$P" cat >"$T/out" 2>"$T/err"
RC=$?
no_leaks stdio
if [ "$RC" = 0 ] && [ "$(cat "$T/out")" = "$(printf 'hello\nworld')" ]; then
    pass "stdin -> the task -> stdout"
else
    fail "stdin/stdout pass-through: exit $RC"
    show_output
fi
new_id stderr
"$SWARMD" run-task --id "$ID" -- /bin/sh -c 'echo to-out; echo to-err >&2; exit 4' >"$T/out" 2>"$T/err" </dev/null
RC=$?
no_leaks stderr
if [ "$RC" = 4 ] && [ "$(cat "$T/out")" = to-out ] && [ "$(cat "$T/err")" = to-err ]; then
    pass "stdout and stderr kept apart"
else
    fail "stdout/stderr: exit $RC"
    show_output
fi
new_id big
head -c 3000000 /dev/urandom >"$T/big"
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" -- "$P" cat <"$T/big" >"$T/big.out" 2>"$T/err"
RC=$?
no_leaks big
if [ "$RC" = 0 ] && cmp -s "$T/big" "$T/big.out"; then
    pass "3 MB through stdin/stdout unchanged"
else
    fail "3 MB through stdin/stdout: exit $RC"
fi
finish
