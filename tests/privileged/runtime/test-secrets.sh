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
