#!/usr/bin/env bash
# swarmd run-task: usage errors exit 2 with one line before anything runs; --help documents
# every flag; start failures exit 125/126/127 naming the step (root only for those).
. "$(dirname "$0")/lib.sh"

usage2() { # usage2 DESCRIPTION ARGS...
    local what=$1; shift
    local err rc
    err=$("$SWARMD" run-task "$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] && [ -n "$err" ]; then pass "$what"
    else fail "$what (exit $rc: $err)"; fi
}
usage2 "no command" --read-only
usage2 "unknown flag" --bogus -- /bin/true
usage2 "bad memory size" --limit-memory 64Q -- /bin/true
usage2 "zero memory" --limit-memory 0 -- /bin/true
usage2 "bad cpu" --limit-cpu half -- /bin/true
usage2 "negative cpu" --limit-cpu -1 -- /bin/true
usage2 "bad pids" --limit-pids 0 -- /bin/true
usage2 "unknown capability" --cap-add NET_FLY -- /bin/true
usage2 "bad network" --network bridge -- /bin/true
usage2 "relative workdir" --workdir tmp -- /bin/true
usage2 "relative rootfs" --rootfs rootfs -- /bin/true
usage2 "env without =" --env FOO -- /bin/true
usage2 "secret without file" --secret-file db_pw -- /bin/true
usage2 "secret name with a slash" --secret-file a/b=/etc/hostname -- /bin/true
usage2 "secret bad mode" --secret-file s=/etc/hostname,mode=999 -- /bin/true
usage2 "secret unknown option" --secret-file s=/etc/hostname,color=red -- /bin/true
usage2 "unknown user name" --user no-such-user-xyz -- /bin/true
usage2 "missing flag value" --hostname

HELP=$("$SWARMD" run-task --help); RC=$?
check "run-task --help exits 0" bash -c "[ $RC = 0 ]"
for flag in --user --read-only --limit-memory --limit-pids --limit-cpu --cap-drop --cap-add \
            --hostname --env --workdir --secret-file --rootfs --network --seccomp --privileged \
            --userns; do
    check "--help documents $flag" has "$HELP" "$flag"
done
check "swarmd --help lists run-task" has "$("$SWARMD" --help)" "run-task"

if [ "$(id -u)" = 0 ]; then
    OUT=$("$SWARMD" run-task -- /nonexistent/cmd 2>&1); RC=$?
    check "missing binary exits 127" bash -c "[ $RC = 127 ]"
    check "missing binary names exec and the path" has "$OUT" "exec /nonexistent/cmd"
    OUT=$("$SWARMD" run-task --rootfs /nonexistent-root -- /bin/true 2>&1); RC=$?
    check "bad rootfs exits 125" bash -c "[ $RC = 125 ]"
    check "bad rootfs names the step" has "$OUT" "rootfs: /nonexistent-root"
    OUT=$("$SWARMD" run-task --secret-file s=/nonexistent-secret -- /bin/true 2>&1); RC=$?
    check "unreadable secret file exits 125" bash -c "[ $RC = 125 ]"
    check "unreadable secret names the file" has "$OUT" "/nonexistent-secret"
    OUT=$("$SWARMD" run-task -- /bin/sh -c 'exit 3' 2>&1); RC=$?
    check "the task's exit status is run-task's" bash -c "[ $RC = 3 ]"
    OUT=$(echo piped | "$SWARMD" run-task -- /bin/cat 2>&1)
    check "stdin and stdout pass through" has "$OUT" "^piped$"
fi
finish
