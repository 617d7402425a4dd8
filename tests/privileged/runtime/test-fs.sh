# Filesystem: --read-only (EROFS on /, writable /tmp tmpfs), a writable --rootfs, --workdir,
# --env and PATH, /dev and masks with --read-only, nothing of the rootfs left mounted.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

run_task ro --rootfs "$ROOTFS" --read-only -- \
    "$P" readonly / /etc /run + writable /tmp + masked + dev + mounts
expect_probe_ok "--read-only --rootfs: EROFS on /, /tmp writable"

run_default_root ro-default --read-only -- readonly / /usr /etc + writable /tmp + masked
expect_probe_ok "--read-only in the default root: EROFS on / /usr /etc, /tmp writable"

run_task rw --rootfs "$ROOTFS" -- "$P" writable / /tmp /etc
expect_probe_ok "--rootfs without --read-only: writable"
if [ -z "$(ls -A "$ROOTFS/tmp")" ]; then
    pass "the rootfs's /tmp is left as it was"
else
    fail "files left in the rootfs's /tmp: $(ls -A "$ROOTFS/tmp")"
fi

run_task workdir --rootfs "$ROOTFS" --workdir /work -e A=1 --env B=two=2 -e PATH=/x:/y -- \
    "$P" cwd /work + env A=1 B=two=2 PATH=/x:/y
expect_probe_ok "--workdir /work, --env A=1, --env B=two=2 (value with '='), PATH kept"

run_task defpath --rootfs "$ROOTFS" -- \
    "$P" cwd / + env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
expect_probe_ok "no --workdir: /; no PATH: the default PATH"

run_task path-lookup --env A=x -- env
if [ "$RC" = 0 ] && grep -qx "A=x" "$T/out" && grep -q "^PATH=" "$T/out"; then
    pass "a bare command name is found on the task's PATH (env), --env passed"
else
    fail "PATH lookup of 'env': exit $RC"
    show_output
fi

run_task badwd --rootfs "$ROOTFS" --workdir /nonexistent -- "$P" pid1
expect_rc "--workdir /nonexistent fails to start" 125 "chdir.*/nonexistent"
finish
