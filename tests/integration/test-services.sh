#!/usr/bin/env bash
# Services on workers (root: tasks are isolated with namespaces and cgroups): a secret, a
# replicated service spread over two workers, the secret inside its tasks and on no disk,
# scale, update, drain, a worker killed (its tasks move), remove; bad specs refused.
. "$(dirname "$0")/lib.sh"
# a task command no other test (or a concurrent run of this one) starts: pgrep finds ours only
SLEEP_ARG=$((100000 + RANDOM * 32768 + RANDOM))
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }

SD=$T/m
SOCK=$SD/swarmd.sock
start_swarmd m init --state-dir "$SD" --listen-addr 127.0.0.1:0 --dispatcher-heartbeat 200ms
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { cat "$T/m.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)
start_swarmd w1 join --state-dir "$T/w1" --hostname svc-w1 "$WT" "$ADDR"
W1=$LAST_PID
start_swarmd w2 join --state-dir "$T/w2" --hostname svc-w2 "$WT" "$ADDR"
W2=$LAST_PID

# running SERVICE: how many of its tasks run (service ps json)
running() { ctl service ps --format json "$1" 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin) if t["state"] == "running"))' 2>/dev/null || echo 0; }
wait_running() { # SERVICE N SECONDS
    for _ in $(seq $(( $3 * 10 ))); do
        [ "$(running "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
pids_of() { ctl service ps --format json "$1" | python3 -c '
import json, sys
print(" ".join(str(t["pid"]) for t in json.load(sys.stdin) if t["state"] == "running"))'; }
on_node() { # SERVICE HOSTNAME: running tasks there
    local id
    id=$(ctl node inspect "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
    ctl service ps --format json "$1" | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin) if t["state"] == "running" and t["node_id"] == sys.argv[1]))' "$id"
}

for _ in $(seq 100); do [ "$(ctl node ls | grep -c ' Ready ')" = 3 ] && break; sleep 0.1; done
check "two workers joined" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep -c ' Ready ')\" = 3 ]"
# the manager runs tasks too unless drained; this test places them on the workers only
MGR=$(ctl node ls --format json | python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin) if n["role"]=="manager"][0])')
check "the manager can be drained" bash -c "'$SWARMCTL' -H unix://$SOCK node update --availability drain $MGR >/dev/null"

SECRET="s3cret-$RANDOM$RANDOM"
SID=$(printf '%s' "$SECRET" | ctl secret create db_pw -)
check "secret create prints an id" bash -c "[[ '$SID' =~ ^[0-9a-z]{25}$ ]]"
check "secret inspect never shows the data" hasnt "$(ctl secret inspect db_pw)" "$SECRET"
secret_field() { ctl secret inspect "$1" | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]; print(json.dumps(s.get(sys.argv[1]), sort_keys=True))' "$2"; }
DIGEST=$(secret_field db_pw digest)
check "secret update --label-add" bash -c "'$SWARMCTL' -H unix://$SOCK secret update --label-add team=db --label-add tier=1 db_pw >/dev/null"
check "…the labels are there" bash -c "[ '$(secret_field db_pw labels)' = '{\"team\": \"db\", \"tier\": \"1\"}' ]"
check "secret update --label-rm" bash -c "'$SWARMCTL' -H unix://$SOCK secret update --label-rm tier db_pw >/dev/null"
check "…the label is gone" bash -c "[ '$(secret_field db_pw labels)' = '{\"team\": \"db\"}' ]"
check "…the data did not change (same digest)" bash -c "[ '$(secret_field db_pw digest)' = '$DIGEST' ]"
OUT=$(ctl secret update db_pw 2>&1); RC=$?
check "secret update with nothing to do is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$(ctl secret update --label-add a=b nosuch 2>&1); RC=$?
check "secret update of an unknown secret fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…no such secret" has "$OUT" "no such secret"

OUT=$(ctl service create --name web --replicas -1 -- /bin/sleep $SLEEP_ARG 2>&1); RC=$?
check "negative replicas refused (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$(ctl service create --name web --secret nope -- /bin/sleep $SLEEP_ARG 2>&1); RC=$?
check "unknown secret refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying which" has "$OUT" "nope"
OUT=$(ctl service create --name web --constraint 'node.colour==red' -- /bin/sleep $SLEEP_ARG 2>&1); RC=$?
check "bad constraint refused" bash -c "[ $RC != 0 ]"
OUT=$(ctl service create --name web --constraint 'node.role== ' -- /bin/sleep $SLEEP_ARG 2>&1); RC=$?
check "a constraint without a value refused" bash -c "[ $RC != 0 ]"
OUT=$(ctl service create --name web --restart-max-attempts 1001 -- /bin/sleep $SLEEP_ARG 2>&1); RC=$?
check "more than 1000 restart attempts refused (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$(ctl service create --name web --limit-memory 12Q -- /bin/sleep $SLEEP_ARG 2>&1); RC=$?
check "bad memory string refused (exit 2)" bash -c "[ $RC = 2 ]"
check "nothing was written by the refused specs" bash -c "[ -z \"\$('$SWARMCTL' -H unix://$SOCK service ls -q)\" ]"

ctl service create --name web --replicas 4 --secret db_pw \
    --secret source=db_pw,target=server.key,mode=0400,uid=1000 --limit-memory 64M -- /bin/sleep $SLEEP_ARG >/dev/null
check "4 replicas running" wait_running web 4 15
N1=$(on_node web svc-w1); N2=$(on_node web svc-w2)
check "spread: 2 on each worker ($N1 + $N2)" bash -c "[ $N1 = 2 ] && [ $N2 = 2 ]"
PID=$(pids_of web | cut -d' ' -f1)
check "a task's pid is a host pid of /bin/sleep" bash -c "grep -q sleep /proc/$PID/comm"
check "the secret is at /run/secrets/db_pw inside the task" bash -c "[ \"\$(cat /proc/$PID/root/run/secrets/db_pw)\" = '$SECRET' ]"
check "the second target has mode 0400 and uid 1000" bash -c "[ \"\$(stat -c '%a %u' /proc/$PID/root/run/secrets/server.key)\" = '400 1000' ]"
check "the secret is in no state dir" bash -c "! grep -rqa '$SECRET' '$SD' '$T/w1' '$T/w2'"
OUT=$(ctl secret rm db_pw 2>&1); RC=$?
check "secret rm refused while in use (exit 1)" bash -c "[ $RC = 1 ]"

ctl service scale web=2 >/dev/null
check "scale to 2" wait_running web 2 10
ctl service update web --replicas 3 >/dev/null
check "update to 3 replicas" wait_running web 3 10
ctl node update --availability drain svc-w1 >/dev/null
for _ in $(seq 100); do [ "$(on_node web svc-w1)" = 0 ] && [ "$(running web)" = 3 ] && break; sleep 0.1; done
N1=$(on_node web svc-w1); R=$(running web)
check "drain: no task on the drained worker, all 3 running elsewhere ($N1, $R)" bash -c "[ $N1 = 0 ] && [ $R = 3 ]"
ctl node update --availability active svc-w1 >/dev/null
kill -9 "$W2"; wait "$W2" 2>/dev/null
for _ in $(seq 150); do [ "$(on_node web svc-w1)" = 3 ] && break; sleep 0.1; done
N1=$(on_node web svc-w1)
check "a killed worker's tasks are rescheduled on the other ($N1 of 3)" bash -c "[ $N1 = 3 ]"
start_swarmd w2b --state-dir "$T/w2"
W2=$LAST_PID
for _ in $(seq 100); do [ "$(ctl node ls | grep -c ' Ready ')" = 3 ] && break; sleep 0.1; done
check "the killed worker comes back Ready" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep -c ' Ready ')\" = 3 ]"
check "its old tasks are not running twice (3 running in all)" bash -c "[ \"\$(pgrep -fc '^/bin/sleep $SLEEP_ARG$')\" = 3 ]"
ctl service rm web >/dev/null
for _ in $(seq 100); do [ -z "$(pgrep -f "^/bin/sleep $SLEEP_ARG\$")" ] && break; sleep 0.1; done
check "service rm: no task process left" bash -c "[ -z \"\$(pgrep -f '^/bin/sleep $SLEEP_ARG$')\" ]"
check "secret rm works once unused" bash -c "'$SWARMCTL' -H unix://$SOCK secret rm db_pw >/dev/null"
finish
