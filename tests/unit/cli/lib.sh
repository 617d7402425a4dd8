# Shared by the swarmctl test scripts (sourced; SWARMCTL set first): a temp dir removed at
# exit with the processes in PIDS, pass/fail counting, and running swarmctl.
TMP=$(mktemp -d)
PIDS=()
lib_cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap lib_cleanup EXIT
unset SWARM_HOST

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*" >&2
}

# run ARGS...: swarmctl with stdout in $TMP/out, stderr in $TMP/err, the exit code in code.
run() {
    "$SWARMCTL" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    code=$?
}

lines() { wc -l <"$1" | tr -d ' '; }

# The closing line and the script's exit status.
finish() {
    echo "$pass passed, $fail failed"
    [[ $fail -eq 0 ]]
}
