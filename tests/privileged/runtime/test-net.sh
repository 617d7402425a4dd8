# Network and hostname: --network none (own namespace, lo up, nothing else) vs host (the
# host's namespace and interfaces); --hostname; ipc and uts namespaces stay private.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

run_task none --rootfs "$ROOTFS" --network none -- "$P" net + ns $(host_ns '!=' net)
expect_probe_ok "--network none: own namespace, only lo, up"

run_task host --rootfs "$ROOTFS" --network host -- \
    "$P" ns $(host_ns '=' net) $(host_ns '!=' uts ipc pid mnt)
expect_probe_ok "--network host: the host's network namespace, the others private"

new_id hn
run_task hn --rootfs "$ROOTFS" --hostname web-1 -- "$P" hostname web-1
expect_probe_ok "--hostname web-1"
if [ "$(hostname)" != web-1 ]; then
    pass "the host's hostname is untouched ($(hostname))"
else
    fail "the host's hostname changed"
fi

run_task longhn --rootfs "$ROOTFS" --hostname "$(printf 'a%.0s' {1..65})" -- "$P" pid1
expect_rc "--hostname of 65 characters is refused" 2 "hostname"
finish
