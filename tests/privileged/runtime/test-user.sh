# --user: uid/gid set, no supplementary groups, a non-root user ends with empty
# capabilities; names looked up in the rootfs's /etc/passwd; root keeps the caps.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

printf 'root:x:0:0:root:/root:/bin/sh\nalice:x:1234:2345::/home/alice:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nstaff:x:50:\n' >"$ROOTFS/etc/group"

run_task u1000 --rootfs "$ROOTFS" --user 1000:1000 -- \
    "$P" user 1000 1000 + nnp + seccomp + masked + pid1
expect_probe_ok "--user 1000:1000: uid/gid 1000, no groups, CapEff/CapPrm/CapAmb 0, seccomp, masks"

run_task u1000-default-root --user 1000:1000 -- /bin/sh -c 'id -u; id -g; id -G; grep ^CapEff /proc/self/status'
if [ "$RC" = 0 ] && [ "$(tr -s '\t\n' '  ' <"$T/out")" = "1000 1000 1000 CapEff: 0000000000000000 " ]; then
    pass "--user 1000:1000 in the default root (id, CapEff 0)"
else
    fail "--user 1000:1000 in the default root: exit $RC"
    show_output
fi

run_task uonly --rootfs "$ROOTFS" --user 1001 -- "$P" user 1001 1001
expect_probe_ok "--user 1001: gid defaults to the uid"

run_task alice --rootfs "$ROOTFS" --user alice -- "$P" user 1234 2345
expect_probe_ok "--user alice: uid and gid from the rootfs's /etc/passwd"

run_task alice-staff --rootfs "$ROOTFS" --user alice:staff -- "$P" user 1234 50
expect_probe_ok "--user alice:staff: group from the rootfs's /etc/group"

run_task root --rootfs "$ROOTFS" --user 0:0 -- "$P" user 0 0 + caps a80425fb a80425fb
expect_probe_ok "--user 0:0 keeps the default capabilities"

run_task nobody --rootfs "$ROOTFS" --user bob -- "$P" pid1
expect_rc "--user bob (not in /etc/passwd) is refused" 2 "bob"
finish
