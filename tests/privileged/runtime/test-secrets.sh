# --secret-file: content, mode, owner, a read-only nosuid,nodev,noexec tmpfs at
# /run/secrets; the host keeps no mount of it after the task.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

printf 's3cret-%s' "$TAG" >"$T/pw.txt"
printf 'line1\nline2\n' >"$T/two.txt"
secret=$(cat "$T/pw.txt")

run_task modeuid --rootfs "$ROOTFS" --secret-file "db_pw=$T/pw.txt,mode=0400,uid=1000,gid=1001" -- \
    "$P" secret /run/secrets/db_pw "$secret" 0400 1000 1001
expect_probe_ok "--secret-file db_pw,mode=0400,uid=1000,gid=1001: content, mode, owner, mount"

two=$'line1\nline2\n'
run_task default --rootfs "$ROOTFS" --secret-file "a=$T/pw.txt" --secret-file "b=$T/two.txt" -- \
    "$P" secret /run/secrets/a "$secret" 0444 0 0 + secret /run/secrets/b "$two" 0444 0 0
expect_probe_ok "two secrets, default mode 0444 and owner 0:0"

run_task default-root --secret-file "db=$T/two.txt,mode=0440,gid=1000" --user 1000:1000 -- \
    /bin/sh -c 'cat /run/secrets/db; stat -c "%a %u:%g" /run/secrets/db; echo x > /run/secrets/db'
if [ "$(head -3 "$T/out")" = "$(printf 'line1\nline2\n440 0:1000')" ] && [ "$RC" != 0 ]; then
    pass "--user 1000:1000 reads a 0440 root:1000 secret in the default root and cannot write it"
else
    fail "secret read by --user 1000 in the default root: exit $RC"
    show_output
fi

printf '#!/bin/sh\necho ran\n' >"$T/script"
run_task noexec --secret-file "x=$T/script,mode=0755" -- /run/secrets/x
expect_rc "an executable secret cannot be run (noexec): 126" 126 "exec /run/secrets/x: Permission denied"
grep -q ran "$T/out" && fail "the secret script ran"

run_task missing --rootfs "$ROOTFS" --secret-file "m=$T/nope" -- "$P" pid1
expect_rc "--secret-file of a missing file" 125 "secret m"

run_task badname --rootfs "$ROOTFS" --secret-file "a/b=$T/pw.txt" -- "$P" pid1
expect_rc "--secret-file with '/' in the name" 2 "secret"

head -c 600000 /dev/zero >"$T/big"
run_task toobig --rootfs "$ROOTFS" --secret-file "big=$T/big" -- "$P" pid1
expect_rc "a secret over 500 KiB is refused" 125 "larger than 500 KiB"

# attack matrix row 12 (issue 6): a task cannot read another task's secrets. Task B keeps
# its secret on its own tmpfs while task A, on the same host and the same default root, looks
# for it every way a task could: its /run/secrets, /proc (its own pid namespace shows none of
# B's processes, so no /proc/PID/root), and the host's directories bound into it.
printf 'other-%s' "$TAG" >"$T/b.txt"
other=$(cat "$T/b.txt")
new_id holder
"$SWARMD" run-task --id "$ID" --secret-file "b_secret=$T/b.txt" -- /bin/sleep 30 \
    >"$T/holder.out" 2>"$T/holder.err" &
HOLDER=$!
BG_PIDS+=("$HOLDER")
for _ in $(seq 50); do pgrep -f "^/bin/sleep 30$" >/dev/null && break; sleep 0.1; done
run_task snooper --secret-file "a_secret=$T/pw.txt" -e "NEEDLE=$other" -- /bin/sh -c '
    ls /run/secrets
    cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "; echo
    for f in /proc/[0-9]*/root/run/secrets/*; do cat "$f" 2>/dev/null; echo; done
    grep -rs "$NEEDLE" /run /tmp /etc /var 2>/dev/null | head -1
    echo end'
if [ "$RC" = 0 ] && grep -qx a_secret "$T/out" && ! grep -q b_secret "$T/out" &&
    ! grep -q "$other" "$T/out" && grep -qx end "$T/out" && ! grep -q sleep "$T/out"; then
    pass "row 12: a task sees only its own secrets; another task's (running) is out of its reach"
else
    fail "row 12: the snooping task (exit $RC) saw: $(tr '\n' ' ' <"$T/out")"
fi
kill -TERM "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

# the secret files lived on the task's tmpfs only: nothing of them in the rootfs
if [ -z "$(find "$ROOTFS/run" -mindepth 1 -not -type d)" ] && ! grep -rqs "s3cret-$TAG" "$ROOTFS"; then
    pass "no secret file or byte left in the rootfs ($(find "$ROOTFS/run" -mindepth 1 | tr '\n' ' '))"
else
    fail "secret data in the rootfs: $(find "$ROOTFS/run" -mindepth 1 -not -type d)"
fi
if grep -q "s3cret-$TAG" /proc/self/mountinfo; then
    fail "secret data in the mount table"
else
    pass "nothing of the secrets in the host's mount table"
fi
finish
