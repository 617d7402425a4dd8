# Capabilities and seccomp as flags change them: --cap-drop/--cap-add, SYS_ADMIN opening
# the gated syscalls, --seccomp unconfined, and --privileged (every capability this
# process holds, no seccomp, no masked paths).
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

run_task nbs --rootfs "$ROOTFS" --cap-drop ALL --cap-add NET_BIND_SERVICE -- \
    "$P" caps 0000000000000400 0000000000000400 + nnp + seccomp
expect_probe_ok "--cap-drop ALL --cap-add NET_BIND_SERVICE: CapEff=CapBnd=0400, seccomp still on"

run_task none --rootfs "$ROOTFS" --cap-drop ALL -- "$P" caps 0 0 + nnp + seccomp
expect_probe_ok "--cap-drop ALL: no capabilities"

run_task drop --rootfs "$ROOTFS" --cap-drop CHOWN --cap-drop cap_kill -- \
    "$P" caps 00000000a80425da 00000000a80425da
expect_probe_ok "--cap-drop CHOWN --cap-drop cap_kill: 0xa80425fb without bits 0 and 5"

# SYS_ADMIN: the default profile lets mount, unshare, sethostname through, but never
# keyrings, io_uring, kexec, AF_ALG or clone3
run_task admin --rootfs "$ROOTFS" --cap-add SYS_ADMIN -- \
    "$P" caps 00000000a82425fb 00000000a82425fb + seccomp-admin + masked
expect_probe_ok "--cap-add SYS_ADMIN: gated syscalls allowed, the rest still refused, masks kept"

run_task unconfined --rootfs "$ROOTFS" --seccomp unconfined -- \
    "$P" unconfined + caps 00000000a80425fb 00000000a80425fb + nnp + masked
expect_probe_ok "--seccomp unconfined: Seccomp 0, default caps and masks kept"

held=$(awk '/^CapPrm:/ {print $2}' /proc/self/status)
run_task priv --rootfs "$ROOTFS" --privileged -- \
    "$P" caps "$held" "$held" + unconfined + unmasked + nnp + pid1
expect_probe_ok "--privileged: CapEff=CapBnd=$held (what this process holds), Seccomp 0, nothing masked"

run_task priv-default-root --privileged -- /bin/sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status'
if [ "$RC" = 0 ] && grep -q "CapEff:.$held" "$T/out" && grep -q "Seccomp:.0" "$T/out"; then
    pass "--privileged in the default root"
else
    fail "--privileged in the default root: exit $RC"
    show_output
fi

# --cap-add ALL: every capability this process holds (here that may lack SYS_RESOURCE),
# as --privileged does; seccomp stays on.
run_task all --rootfs "$ROOTFS" --cap-add ALL -- "$P" caps "$held" "$held" + seccomp-admin
expect_probe_ok "--cap-add ALL: every capability swarmd holds, seccomp still on"

run_task badcap --rootfs "$ROOTFS" --cap-add NOT_A_CAP -- "$P" pid1
expect_rc "--cap-add NOT_A_CAP is a usage error" 2 "NOT_A_CAP"
finish
