#!/bin/bash
# swarmctl's command line: usage errors exit 2 with one stderr line, --help exits 0 for
# every command, a missing daemon socket exits 1 with one line naming the socket.
set -u

SWARMCTL=${1:?usage: test-swarmctl-usage.sh PATH-TO-SWARMCTL}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Usage checks point at a socket that does not exist: a command that wrongly got past
# its argument checks fails with exit 1 instead of 2.
NOSOCK=unix:///nonexistent/x.sock

# usage_error ARGS...: exit 2, nothing on stdout, exactly one stderr line with a hint.
usage_error() {
    run "$@"
    if [[ $code -ne 2 ]]; then
        bad "swarmctl $*: exit $code, want 2 (stderr: $(cat "$TMP/err"))"
    elif [[ -s $TMP/out ]]; then
        bad "swarmctl $*: wrote to stdout: $(cat "$TMP/out")"
    elif [[ $(lines "$TMP/err") -ne 1 ]]; then
        bad "swarmctl $*: want one stderr line, got: $(cat "$TMP/err")"
    elif ! grep -q "^swarmctl: .*See 'swarmctl.* --help'\.$" "$TMP/err"; then
        bad "swarmctl $*: stderr lacks the --help hint: $(cat "$TMP/err")"
    else
        ok
    fi
}

# help CMD... -- FLAG...: exit 0, usage on stdout naming each flag, nothing on stderr.
help() {
    local args=()
    while [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    shift
    run "${args[@]}"
    if [[ $code -ne 0 ]]; then
        bad "swarmctl ${args[*]}: exit $code, want 0"
        return
    fi
    if [[ -s $TMP/err ]] || ! grep -q '^Usage:' "$TMP/out"; then
        bad "swarmctl ${args[*]}: no usage on stdout or noise on stderr"
        return
    fi
    local flag
    for flag in "$@"; do
        if ! grep -q -e "$flag" "$TMP/out"; then
            bad "swarmctl ${args[*]}: help does not document $flag"
            return
        fi
    done
    ok
}

# --- help on every command
help --help -- --host --help --version node join-token cluster service secret
help -H "$NOSOCK" --help -- --host
help node --help -- --help ls inspect
help node ls --help -- --quiet --format --help
help node list -h -- --quiet --format
help node inspect --help -- --pretty --help
help join-token --help -- --quiet --rotate --help worker manager
help cluster --help -- inspect --help
help cluster inspect --help -- --quiet --format --help
help node ls -q --help -- --quiet
help node --help -- update
help node update --help -- --availability --label-add --label-rm --help
help service --help -- create inspect ls ps rm scale update --help
help service create --help -- --name --replicas --mode --secret source= --env --workdir \
    --user --hostname --read-only --limit-memory --limit-cpu --limit-pids --reserve-memory \
    --reserve-cpu --constraint --cap-add --cap-drop --restart-condition --restart-delay \
    --restart-max-attempts --rootfs --network --label --help
help service update --help -- --replicas --secret --limit-memory --constraint --help
help service ls --help -- --quiet --format --help
help service list -h -- --quiet
help service inspect --help -- --pretty --help
help service ps --help -- --quiet --format --help
help service scale --help -- SERVICE=REPLICAS --help
help service rm --help -- --help
help service remove --help -- --help
help secret --help -- create inspect ls rm --help
help secret create --help -- NAME 'FILE|-' --label --help '500 KiB'
help secret ls --help -- --quiet --format --help
help secret inspect --help -- --pretty --help
help secret rm --help -- --help
help service create --name web --help -- --name

run --version
[[ $code -eq 0 ]] && grep -q '^swarmctl version ' "$TMP/out" && ok || bad "--version"

# --- usage errors
usage_error
usage_error --bogus
usage_error -x
usage_error -H
usage_error bogus
usage_error -H "$NOSOCK" bogus ls
usage_error -H "$NOSOCK" node
usage_error -H "$NOSOCK" node bogus
usage_error -H "$NOSOCK" node --bogus ls
usage_error -H "$NOSOCK" node ls extra
usage_error -H "$NOSOCK" node ls --bogus
usage_error -H "$NOSOCK" node ls -z
usage_error -H "$NOSOCK" node ls --format
usage_error -H "$NOSOCK" node ls --format yaml
usage_error -H "$NOSOCK" node ls --format pretty
usage_error -H "$NOSOCK" node ls --format=
usage_error -H "$NOSOCK" node ls --quiet=yes
usage_error -H "$NOSOCK" node ls -q --format json
usage_error -H "$NOSOCK" node inspect
usage_error -H "$NOSOCK" node inspect --pretty
usage_error -H "$NOSOCK" node inspect --format json node1
usage_error -H "$NOSOCK" node inspect ""
usage_error -H "$NOSOCK" join-token
usage_error -H "$NOSOCK" join-token admin
usage_error -H "$NOSOCK" join-token Worker
usage_error -H "$NOSOCK" join-token worker manager
usage_error -H "$NOSOCK" join-token --rotate
usage_error -H "$NOSOCK" join-token --bogus worker
usage_error -H "$NOSOCK" join-token -x worker
usage_error -H "$NOSOCK" cluster
usage_error -H "$NOSOCK" cluster bogus
usage_error -H "$NOSOCK" cluster inspect extra
usage_error -H "$NOSOCK" cluster inspect --format table
usage_error -H "$NOSOCK" cluster inspect --format xml
usage_error -H "$NOSOCK" cluster inspect -q --format json
usage_error -H "$NOSOCK" cluster inspect --rotate

# service
C="-H $NOSOCK service create --name web"
usage_error -H "$NOSOCK" service
usage_error -H "$NOSOCK" service bogus
usage_error -H "$NOSOCK" service --bogus ls
usage_error -H "$NOSOCK" service create
usage_error -H "$NOSOCK" service create -- /bin/true
usage_error -H "$NOSOCK" service create --name web
usage_error -H "$NOSOCK" service create --name web --
usage_error -H "$NOSOCK" service create --name "" -- x
usage_error -H "$NOSOCK" service create --name -web -- x
usage_error -H "$NOSOCK" service create --name "we b" -- x
usage_error -H "$NOSOCK" service create --name "$(printf 'a%.0s' {1..64})" -- x
usage_error -H "$NOSOCK" service create --bogus --name web -- x
for bad in "--replicas -1" "--replicas x" "--replicas 1.5" "--mode bogus" \
    "--mode global --replicas 2" "--limit-memory 64Q" "--limit-memory -1M" "--limit-memory M" \
    "--reserve-memory lots" "--limit-cpu 0" "--limit-cpu -1" "--limit-cpu half" \
    "--reserve-cpu 1x" "--limit-pids 0" "--limit-pids x" "--restart-delay 5" \
    "--restart-delay -5s" "--restart-delay soon" "--restart-condition always" \
    "--restart-max-attempts -1" "--network bridge" "--workdir relative" "--rootfs rel/dir" \
    "--user root:" "--user :0" "--user 1:2:3" "--hostname -bad" "--hostname a_b" \
    "--read-only=maybe" "--env =x" "--env NOVALUE" "--label =v" "--cap-add NET-ADMIN" \
    "--cap-drop" "--constraint node.role" "--constraint node.rol==worker" \
    "--constraint node.role==boss" "--constraint node.labels.==x" "--constraint node.id==" \
    "--constraint engine.labels.x==y" "--secret ''" "--secret -bad" \
    "--secret source=a,target=b/c" "--secret source=a,target=.." "--secret source=a,mode=0999" \
    "--secret source=a,mode=rw" "--secret source=a,uid=-1" "--secret source=a,gid=x" \
    "--secret source=a,foo=bar" "--secret target=x" "--secret source=a,target" \
    "--secret a --secret source=b,target=a" "--limit-memory 64M --reserve-memory 128M" \
    "--limit-cpu 0.5 --reserve-cpu 1"; do
    eval "usage_error $C $bad -- /bin/true"
done
usage_error -H "$NOSOCK" service ls extra
usage_error -H "$NOSOCK" service ls --format pretty
usage_error -H "$NOSOCK" service ls -q --format json
usage_error -H "$NOSOCK" service inspect
usage_error -H "$NOSOCK" service inspect ""
usage_error -H "$NOSOCK" service inspect --format json web
usage_error -H "$NOSOCK" service ps
usage_error -H "$NOSOCK" service ps web api
usage_error -H "$NOSOCK" service ps ""
usage_error -H "$NOSOCK" service ps --format yaml web
usage_error -H "$NOSOCK" service ps -q --format json web
usage_error -H "$NOSOCK" service scale
usage_error -H "$NOSOCK" service scale web
usage_error -H "$NOSOCK" service scale web=
usage_error -H "$NOSOCK" service scale =3
usage_error -H "$NOSOCK" service scale web=-1
usage_error -H "$NOSOCK" service scale web=x api=2
usage_error -H "$NOSOCK" service scale --replicas 2 web
usage_error -H "$NOSOCK" service update
usage_error -H "$NOSOCK" service update web
usage_error -H "$NOSOCK" service update web api --replicas 2
usage_error -H "$NOSOCK" service update --replicas -1 web
usage_error -H "$NOSOCK" service update web --limit-memory 1Q
usage_error -H "$NOSOCK" service update web --mode global
usage_error -H "$NOSOCK" service update web --name api
usage_error -H "$NOSOCK" service update web --
usage_error -H "$NOSOCK" service update web --env -- /bin/true
usage_error -H "$NOSOCK" service rm
usage_error -H "$NOSOCK" service rm ""
usage_error -H "$NOSOCK" service rm --force web
# secret
usage_error -H "$NOSOCK" secret
usage_error -H "$NOSOCK" secret bogus
usage_error -H "$NOSOCK" secret create
usage_error -H "$NOSOCK" secret create db_pw
usage_error -H "$NOSOCK" secret create db_pw a b
usage_error -H "$NOSOCK" secret create "bad name" -
usage_error -H "$NOSOCK" secret create .hidden -
usage_error -H "$NOSOCK" secret create db_pw ""
usage_error -H "$NOSOCK" secret create --label =x db_pw -
usage_error -H "$NOSOCK" secret create --bogus db_pw -
usage_error -H "$NOSOCK" secret ls extra
usage_error -H "$NOSOCK" secret ls --format pretty
usage_error -H "$NOSOCK" secret ls -q --format json
usage_error -H "$NOSOCK" secret inspect
usage_error -H "$NOSOCK" secret inspect ""
usage_error -H "$NOSOCK" secret rm
usage_error -H "$NOSOCK" secret rm --force x
# node update
usage_error -H "$NOSOCK" node update
usage_error -H "$NOSOCK" node update wrk-1
usage_error -H "$NOSOCK" node update --availability active
usage_error -H "$NOSOCK" node update --availability active a b
usage_error -H "$NOSOCK" node update --availability gone wrk-1
usage_error -H "$NOSOCK" node update --availability Drain wrk-1
usage_error -H "$NOSOCK" node update --label-add =x wrk-1
usage_error -H "$NOSOCK" node update --label-rm "" wrk-1
usage_error -H "$NOSOCK" node update --label-rm k=v wrk-1
usage_error -H "$NOSOCK" node update --label-add k=v --label-rm k wrk-1
usage_error -H "$NOSOCK" node update --availability drain ""
usage_error -H "$NOSOCK" node update --allow-rejoin=maybe wrk-1
usage_error -H "$NOSOCK" node update --allow-rejoin --role manager wrk-1
usage_error -H "$NOSOCK" node update --allow-rejoin --force-rotate-cert wrk-1

# --- host selection
usage_error -H tcp://127.0.0.1:2377 node ls
grep -q 'tcp:// hosts are not supported yet' "$TMP/err" && ok || bad "tcp:// message: $(cat "$TMP/err")"
usage_error -H http://x node ls
usage_error -H /var/lib/swarmd/swarmd.sock node ls
usage_error -H unix://relative.sock node ls
usage_error -H "unix:///$(printf 'x%.0s' {1..200}).sock" node ls
SWARM_HOST=tcp://10.0.0.1:2377 usage_error node ls
grep -q SWARM_HOST "$TMP/err" && ok || bad "SWARM_HOST error does not name the variable"

# --- a daemon that is not there: exit 1, one line naming the socket and what to do
for cmd in "node ls" "node inspect self" "join-token worker" "cluster inspect" \
    "service ls" "service ps web" "service create --name web -- /bin/true" "secret ls" \
    "node update --availability drain x" "service scale web=2" "secret rm x"; do
    # shellcheck disable=SC2086
    run -H "$NOSOCK" $cmd
    if [[ $code -ne 1 ]]; then
        bad "swarmctl -H $NOSOCK $cmd: exit $code, want 1"
    elif [[ $(lines "$TMP/err") -ne 1 ]] || ! grep -q '/nonexistent/x.sock' "$TMP/err"; then
        bad "swarmctl -H $NOSOCK $cmd: want one line naming the socket, got: $(cat "$TMP/err")"
    elif ! grep -q 'swarmd' "$TMP/err" || [[ -s $TMP/out ]]; then
        bad "swarmctl -H $NOSOCK $cmd: unhelpful message or stdout noise"
    else
        ok
    fi
done
SWARM_HOST=$NOSOCK run node ls
[[ $code -eq 1 ]] && grep -q '/nonexistent/x.sock' "$TMP/err" && ok || bad "SWARM_HOST not used"

# a socket path that exists but nobody listens on it
python3 - "$TMP/dead.sock" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
EOF
if [[ -S $TMP/dead.sock ]]; then
    run -H "unix://$TMP/dead.sock" node ls
    [[ $code -eq 1 && $(lines "$TMP/err") -eq 1 ]] && grep -q 'dead.sock' "$TMP/err" && ok ||
        bad "stale socket: exit $code: $(cat "$TMP/err")"
fi

finish
