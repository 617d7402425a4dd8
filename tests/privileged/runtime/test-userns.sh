# --userns: root in the task is host uid 100000 (map 0 100000 65536), with a new user
# namespace; a uid outside the map fails to start naming setuid.
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

chmod 0755 "$T" # the task's root (host uid 100000) must reach $ROOTFS
run_task map --rootfs "$ROOTFS" --userns -- \
    "$P" idmap 100000 65536 + user 0 0 + ns $(host_ns '!=' user pid mnt net) + pid1 + nnp + seccomp + caps a80425fb a80425fb
expect_probe_ok "--userns: uid_map/gid_map 0 100000 65536, root inside, new user namespace"

run_task map-user --rootfs "$ROOTFS" --userns --user 1000:1000 -- "$P" user 1000 1000 + idmap 100000 65536
expect_probe_ok "--userns --user 1000:1000"

new_id hostview
"$SWARMD" run-task --id "$ID" --rootfs "$ROOTFS" --userns -- "$P" sleep 30 >"$T/out" 2>"$T/err" &
BG=$!
BG_PIDS+=("$BG")
for _ in $(seq 100); do grep -q sleeping "$T/out" 2>/dev/null && break; sleep 0.05; done
hp=$(pgrep -f "^$P sleep" | head -1)
huid=$( [ -n "$hp" ] && awk '/^Uid:/ {print $2}' "/proc/$hp/status")
kill -TERM "$BG"; wait "$BG"; RC=$?
no_leaks hostview
if [ "$huid" = 100000 ]; then
    pass "--userns: the host sees the task as uid 100000"
else
    fail "--userns: host uid of the task '$huid'"
fi

run_task outside --rootfs "$ROOTFS" --userns --user 70000 -- "$P" pid1
expect_rc "--userns --user 70000 (outside the map) fails to start" 125 "set[gu]id 70000"
expect_one_line_error "--userns --user 70000"

run_task userns-default-root --userns -- /bin/sh -c 'id -u; cat /proc/self/uid_map'
if [ "$RC" = 0 ] && [ "$(head -1 "$T/out")" = 0 ]; then
    pass "--userns in the default root: /bin/sh runs as root inside"
else
    fail "--userns in the default root: exit $RC"
    show_output
fi
finish
