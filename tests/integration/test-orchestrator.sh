#!/usr/bin/env bash
# Orchestrator and scheduler end to end (root): global services follow the nodes, restart
# policies (on-failure, none, max attempts, any, delay) and history, rolling updates one
# slot at a time, constraints, reservations and labels, pending tasks placed when they can.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }

SD=$T/m
SOCK=$SD/swarmd.sock
start_swarmd m init --state-dir "$SD" --listen-addr 127.0.0.1:0 --dispatcher-heartbeat 200ms
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { cat "$T/m.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)
start_swarmd w1 join --state-dir "$T/w1" --hostname orch-w1 "$WT" "$ADDR"
start_swarmd w2 join --state-dir "$T/w2" --hostname orch-w2 "$WT" "$ADDR"

# A task that ends at once on SIGTERM, so removals never wait for the grace period.
LOOP='trap "exit 0" TERM; while :; do sleep 0.2; done'

# q QUERY SERVICE [ARG]: a question about `service ps --format json SERVICE`, answered
# by the python below (prints "ERR" when the service cannot be listed).
cat >"$T/q.py" <<'EOF'
import json, sys
q, arg = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
try:
    ts = json.load(sys.stdin)
except Exception:
    print("ERR"); sys.exit(0)
run = [t for t in ts if t["state"] == "running" and t["desired_state"] == "running"]
if q == "running":          # tasks running and wanted running
    print(len(run))
elif q == "on":             # running tasks on node ARG
    print(sum(1 for t in run if t["node_id"] == arg))
elif q == "nodes":          # node ids of running tasks, sorted
    print(" ".join(sorted(t["node_id"] for t in run)))
elif q == "liveon":         # live tasks on node ARG
    print(sum(1 for t in ts if t["desired_state"] == "running" and t["node_id"] == arg
              and t["state"] not in ("complete", "shutdown", "failed", "rejected", "orphaned")))
elif q == "pids":
    print(" ".join(str(t["pid"]) for t in run))
elif q == "state":          # count of tasks in state ARG
    print(sum(1 for t in ts if t["state"] == arg))
elif q == "total":
    print(len(ts))
elif q == "live":           # tasks wanted running and not finished
    print(sum(1 for t in ts if t["desired_state"] == "running"
              and t["state"] not in ("complete", "shutdown", "failed", "rejected", "orphaned")))
elif q == "maxslot":        # the most tasks any one slot holds
    c = {}
    for t in ts:
        c[t["slot"]] = c.get(t["slot"], 0) + 1
    print(max(c.values()) if c else 0)
elif q == "failed":         # "exit_code|error" of the failed tasks
    for t in ts:
        if t["state"] == "failed":
            print("%s|%s" % (t["exit_code"], t["error"]))
elif q == "pending":        # messages of pending tasks
    for t in ts:
        if t["state"] == "pending":
            print(t["message"])
elif q == "ids":
    print(" ".join(t["id"] for t in ts))
EOF
q() { ctl service ps --format json "$2" 2>/dev/null | python3 "$T/q.py" "$1" "${3:-}"; }
# until SECONDS CMD...: retry CMD every 0.1 s until it succeeds
until_ok() {
    local n=$(( $1 * 10 )); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
is() { [ "$(q "$2" "$3" "${4:-}")" = "$1" ]; }   # is VALUE QUERY SERVICE [ARG]
ge() { local v; v=$(q "$2" "$3" "${4:-}"); [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge "$1" ]; }
node_id() { ctl node inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])'; }
gone() { ctl service rm "$1" >/dev/null; }

until_ok 10 bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep -c ' Ready ')\" = 3 ]"
check "two workers joined" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep -c ' Ready ')\" = 3 ]"
MGR=$(ctl node ls --format json | python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin) if n["role"]=="manager"][0])')
check "the manager is drained" bash -c "'$SWARMCTL' -H unix://$SOCK node update --availability drain $MGR >/dev/null"
N1=$(node_id orch-w1); N2=$(node_id orch-w2)
W12=$(printf '%s\n' "$N1" "$N2" | sort | tr '\n' ' ' | sed 's/ $//') # both, as q nodes prints them

# ---------------------------------------------------------------- 1. global services
ctl service create --name glob --mode global -- /bin/sh -c "$LOOP" >/dev/null
check "global: one task per worker" until_ok 15 is "$W12" nodes glob
check "global: none on the drained manager" is 0 on glob "$MGR"
start_swarmd w3 join --state-dir "$T/w3" --hostname orch-w3 "$WT" "$ADDR"
W3=$LAST_PID
until_ok 10 bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep -c ' Ready ')\" = 4 ]"
N3=$(node_id orch-w3)
check "global: a third worker joining gets one" until_ok 15 is 1 on glob "$N3"
check "global: 3 running in all" is 3 running glob
ctl node update --availability drain orch-w3 >/dev/null
check "global: draining a worker removes its task" until_ok 10 is 0 on glob "$N3"
check "global: the others keep theirs" is "$W12" nodes glob
check "global: the drained worker's task is shut down, not replaced" until_ok 5 is 0 liveon glob "$N3"
ctl node update --availability active orch-w3 >/dev/null
check "global: back to active, it gets one again" until_ok 15 is 1 on glob "$N3"
ctl node update --availability drain orch-w3 >/dev/null # 2 workers from here on
gone glob

# ---------------------------------------------------------------- 2. restart policy
ctl service create --name fail --restart-condition on-failure -- /bin/sh -c 'exit 3' >/dev/null
check "on-failure: failed tasks are replaced" until_ok 15 ge 3 state fail failed
F=$(q failed fail | head -n 1)
check "on-failure: a failed task has exit code 3 and says 'non-zero exit (3)' ($F)" \
    bash -c "[[ '$F' == '3|'*'non-zero exit (3)'* ]]"
check "on-failure: service ps shows the failure in its ERROR column" \
    has "$(ctl service ps fail)" "non-zero exit (3)"
MAX=0
SEEN=""
for _ in $(seq 40); do # 4 s of failures, sampled: a slot holds at most 5 + 1 tasks
    M=$(q maxslot fail); [[ "$M" =~ ^[0-9]+$ ]] && [ "$M" -gt "$MAX" ] && MAX=$M
    SEEN="$SEEN $(q ids fail)"
    sleep 0.1
done
NSEEN=$(tr ' ' '\n' <<<"$SEEN" | sort -u | grep -c .)
check "on-failure: many attempts made ($NSEEN tasks seen)" bash -c "[ $NSEEN -ge 8 ]"
check "on-failure: history per slot stays at <= 5 (+1 current): max $MAX" bash -c "[ $MAX -le 6 ]"
ctl service update fail --restart-condition none >/dev/null
check "on-failure -> none: no live task once the last one failed" until_ok 10 is 0 live fail
sleep 1.5
T5=$(q total fail)
check "history trimmed to 5 when the slot is idle ($T5)" bash -c "[ '$T5' = 5 ]"
gone fail

ctl service create --name once --restart-condition none -- /bin/sh -c 'exit 3' >/dev/null
check "none: the task fails" until_ok 15 is 1 state once failed
sleep 2
check "none: a failed task is not replaced (1 task in all)" is 1 total once
gone once

ctl service create --name twice --restart-condition on-failure --restart-max-attempts 2 \
    -- /bin/sh -c 'exit 3' >/dev/null
check "max-attempts 2: the first run and two restarts fail (Docker's meaning)" until_ok 15 is 3 state twice failed
sleep 2.5
check "max-attempts 2: then no more (3 tasks, none live)" \
    bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK service ps --format json twice | python3 '$T/q.py' total)\" = 3 ] && [ \"\$('$SWARMCTL' -H unix://$SOCK service ps --format json twice | python3 '$T/q.py' live)\" = 0 ]"
gone twice

ctl service create --name again --restart-condition any -- /bin/true >/dev/null
check "any: completed tasks restart" until_ok 15 ge 3 state again complete
check "any: exit code 0 is no failure" is 0 state again failed
gone again

ctl service create --name slow --restart-condition on-failure --restart-delay 2s \
    -- /bin/sh -c 'exit 3' >/dev/null
# the time each task is first seen, sampled every 0.1 s for 8 s
python3 - "$SWARMCTL" "$SOCK" >"$T/delay.out" <<'EOF'
import json, subprocess, sys, time
first = {}
end = time.monotonic() + 8
while time.monotonic() < end:
    out = subprocess.run([sys.argv[1], "-H", "unix://" + sys.argv[2], "service", "ps",
                          "--format", "json", "slow"], capture_output=True, text=True).stdout
    try:
        for t in json.loads(out):
            first.setdefault(t["id"], time.monotonic())
    except ValueError:
        pass
    time.sleep(0.1)
ts = sorted(first.values())
print(" ".join("%.2f" % (b - a) for a, b in zip(ts, ts[1:])))
EOF
GAPS=$(cat "$T/delay.out")
check "restart-delay 2s: replacements come ($GAPS)" bash -c "[ \$(wc -w <<<'$GAPS') -ge 2 ]"
check "restart-delay 2s: at least ~2 s apart ($GAPS)" \
    python3 -c 'import sys; g=[float(x) for x in sys.argv[1].split()]; sys.exit(0 if g and min(g) >= 1.8 else 1)' "$GAPS"
gone slow

# ---------------------------------------------------------------- 3. rolling update
# poll.py SWARMCTL SOCK SERVICE KEY N STOPFILE: every 50 ms, how many of the N slots
# (KEY slot) or nodes (KEY node_id) have no task running and wanted running; prints the
# worst and the number of samples, and the worst sample on stderr.
cat >"$T/poll.py" <<'EOF'
import json, os, subprocess, sys, time
ctl, sock, svc, key, n, stop = sys.argv[1:7]
n = int(n)
worst, samples, end = 0, 0, time.monotonic() + 40
while time.monotonic() < end and not os.path.exists(stop):
    out = subprocess.run([ctl, "-H", "unix://" + sock, "service", "ps", "--format", "json", svc],
                         capture_output=True, text=True).stdout
    try:
        ts = json.loads(out)
    except ValueError:
        continue
    up = {t[key] for t in ts if t["state"] == "running" and t["desired_state"] == "running"}
    if n - len(up) > worst:
        worst = n - len(up)
        seen = sorted((str(t[key])[:6], t["spec_version"], t["desired_state"], t["state"]) for t in ts)
        print("worst sample:", "; ".join("%s v%d %s/%s" % x for x in seen), file=sys.stderr)
    samples += 1
    time.sleep(0.05)
print(worst, samples)
EOF
# rolling SERVICE KEY N UPDATE-ARGS...: run the update under poll.py until updated()
# succeeds, then check the worst sample
rolling() {
    local svc=$1 key=$2 n=$3 worst samples poll; shift 3
    rm -f "$T/poll.stop"
    python3 "$T/poll.py" "$SWARMCTL" "$SOCK" "$svc" "$key" "$n" "$T/poll.stop" \
        >"$T/poll.out" 2>"$T/poll.err" &
    poll=$!
    sleep 0.3
    ctl service update "$@" "$svc" >/dev/null
    check "update $svc: all tasks end with the new spec" until_ok 30 updated
    touch "$T/poll.stop"
    wait "$poll"
    read -r worst samples <"$T/poll.out"
    [ "${worst:-9}" -le 1 ] || tail -n 1 "$T/poll.err" >&2
    check "update $svc: at no point more than one $key not running (worst $worst of $n, $samples samples)" \
        bash -c "[ '${worst:-9}' -le 1 ] && [ '${samples:-0}' -ge 5 ]"
}
env_all() { # env_all SERVICE N VAR=VALUE: N running tasks with it in /proc/PID/environ
    local p n=0
    for p in $(q pids "$1"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "$3" && n=$((n + 1))
    done
    [ "$n" = "$2" ]
}

ctl service create --name upd --replicas 4 --env A=1 -- /bin/sh -c "$LOOP" >/dev/null
check "update: 4 replicas running" until_ok 15 is 4 running upd
OLD=$(q pids upd)
updated() { env_all upd 4 A=2; }
rolling upd slot 4 --env A=2
check "update: none of the old processes is left" bash -c "for p in $OLD; do [ -e /proc/\$p ] && grep -qx A=1 <(tr '\\0' '\\n' </proc/\$p/environ) && exit 1; done; exit 0"
ctl service update upd -- /bin/sh -c "A_CMD=1; $LOOP" >/dev/null
cmd_all() { local p n=0; for p in $(q pids upd); do grep -q A_CMD /proc/$p/cmdline 2>/dev/null && n=$((n + 1)); done; [ "$n" = 4 ]; }
check "update: a changed command reaches all 4 tasks" until_ok 30 cmd_all
gone upd

ctl service create --name gupd --mode global --env A=1 -- /bin/sh -c "$LOOP" >/dev/null
check "global update: one task per worker" until_ok 15 is "$W12" nodes gupd
updated() { env_all gupd 2 A=2; }
rolling gupd node_id 2 --env A=2
gone gupd

# ---------------------------------------------------------------- 4. constraints, reservations
ctl service create --name pin --replicas 3 --constraint node.hostname==orch-w1 -- /bin/sh -c "$LOOP" >/dev/null
check "constraint node.hostname==orch-w1: all 3 on it" until_ok 15 is 3 on pin "$N1"
gone pin

ctl service create --name nowhere --constraint node.hostname==no-such-host -- /bin/sh -c "$LOOP" >/dev/null
check "impossible constraint: pending with 'no suitable node'" \
    until_ok 10 bash -c "'$SWARMCTL' -H unix://$SOCK service ps --format json nowhere | python3 '$T/q.py' pending | grep -q 'no suitable node.*fail constraints'"
check "…shown in service ps" has "$(ctl service ps nowhere)" "no suitable node"
check "…and it stays pending" is 1 state nowhere pending
gone nowhere

ctl service create --name huge --reserve-memory 64T -- /bin/sh -c "$LOOP" >/dev/null
check "reserve-memory larger than any node: pending 'without memory'" \
    until_ok 10 bash -c "'$SWARMCTL' -H unix://$SOCK service ps --format json huge | python3 '$T/q.py' pending | grep -q '[1-9] without memory'"
check "…nothing runs" is 0 running huge
gone huge

ctl service create --name zoned --replicas 2 --constraint node.labels.zone==a -- /bin/sh -c "$LOOP" >/dev/null
check "label constraint with no labelled node: pending" until_ok 10 is 2 state zoned pending
sleep 1
ctl node update --label-add zone=a orch-w2 >/dev/null
check "pending tasks placed as soon as a node gets the label: all on orch-w2" until_ok 10 is 2 on zoned "$N2"
gone zoned
kill -0 "$W3" 2>/dev/null || fail "worker 3 died"
finish
