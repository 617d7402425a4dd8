# run-task with no flags: every default isolation point, checked from inside the task,
# in the default root (the host's system dirs) and in a bare --rootfs.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

ALL_NS=(pid mnt uts ipc net cgroup)
DEFAULT_CHECKS=(pid1 + ns $(host_ns '!=' "${ALL_NS[@]}") $(host_ns '=' user)
    + caps 00000000a80425fb 00000000a80425fb + nnp + seccomp + masked + mounts + dev
    + net + cgroupns + cwd / + user 0 0 + signals + procs)

new_id defaults-root
run_default_root defaults-root -- "${DEFAULT_CHECKS[@]}" + hostname "${ID:0:12}"
expect_probe_ok "default root: pid 1, hostname ${ID:0:12}, namespaces, caps, no_new_privs, seccomp, masks, /dev, lo"
run_default_root defaults-root-ro -- readonly /usr /etc /bin + writable / /tmp \
    + absent /work /root /home /var /srv /run/swarmd /tmp/"$(basename "$T")"
expect_probe_ok "default root: the host's /usr /etc /bin bound read-only, / and /tmp writable, nothing else of the host"

new_id rootfs
run_task rootfs --rootfs "$ROOTFS" -- "$P" "${DEFAULT_CHECKS[@]}" + hostname "${ID:0:12}"
expect_probe_ok "--rootfs: the same defaults in a bare rootfs"

# the shell of the issue's first example
new_id sh
"$SWARMD" run-task --id "$ID" -- /bin/sh -c 'echo $$; hostname; id -u' >"$T/out" 2>"$T/err"
RC=$?
no_leaks sh
if [ "$RC" = 0 ] && [ "$(cat "$T/out")" = "$(printf '1\n%s\n0' "${ID:0:12}")" ]; then
    pass "/bin/sh in the default root: pid 1, hostname, uid 0"
else
    fail "/bin/sh in the default root: exit $RC"
    show_output
fi
finish
