#!/usr/bin/env bash
# bench-raft's peer: a 3-member etcd 3.4 cluster (Debian etcd-server) on loopback.
#   raft-peer-etcd.sh install      apt-get etcd-server etcd-client when etcd is missing
#   raft-peer-etcd.sh start DIR    3 members, data and logs in DIR; prints "member NAME PID
#                                  CLIENT_PORT" per member once all are healthy
#   raft-peer-etcd.sh leader DIR   prints the client port of the current leader
#   raft-peer-etcd.sh stop DIR     kills the members started in DIR and removes DIR
# Ports: clients $ETCD_CLIENT_BASE+1..3 (default 32791..32793), peers $ETCD_PEER_BASE+1..3
# (default 32801..32803); plain http on 127.0.0.1 (as PEERS.md measured it).
set -u
set -o pipefail

CB=${ETCD_CLIENT_BASE:-32790}
PB=${ETCD_PEER_BASE:-32800}
export ETCDCTL_API=3

endpoints() { echo "127.0.0.1:$((CB + 1)),127.0.0.1:$((CB + 2)),127.0.0.1:$((CB + 3))"; }

install() {
    command -v etcd >/dev/null && command -v etcdctl >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q etcd-server etcd-client >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q etcd-server etcd-client >/dev/null 2>&1; } ||
        { echo "apt-get install etcd-server etcd-client failed" >&2; return 1; }
    command -v etcd >/dev/null && command -v etcdctl >/dev/null
}

stop() {
    local dir=$1 p
    [ -d "$dir" ] || return 0
    for p in $(cat "$dir"/*.pid 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
    for p in $(cat "$dir"/*.pid 2>/dev/null); do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$dir"
}

start() {
    local dir=$1 i cl="" p
    mkdir -p "$dir" || return 1
    for i in 1 2 3; do cl="$cl${cl:+,}m$i=http://127.0.0.1:$((PB + i))"; done
    for i in 1 2 3; do
        # setsid: a Ctrl-C meant for the bench reaches the bench, which stops us in order
        setsid etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:$((CB + i))" \
            --advertise-client-urls "http://127.0.0.1:$((CB + i))" \
            --listen-peer-urls "http://127.0.0.1:$((PB + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((PB + i))" \
            --initial-cluster "$cl" --initial-cluster-token bench-raft \
            --initial-cluster-state new --log-level warn \
            </dev/null >"$dir/m$i.log" 2>&1 &
        echo $! >"$dir/m$i.pid"
    done
    for _ in $(seq 150); do
        if etcdctl --endpoints="$(endpoints)" --dial-timeout=1s endpoint health >/dev/null 2>&1; then
            for i in 1 2 3; do echo "member m$i $(cat "$dir/m$i.pid") $((CB + i))"; done
            return 0
        fi
        for p in $(cat "$dir"/*.pid); do
            kill -0 "$p" 2>/dev/null || { echo "etcd exited: $(tail -n 3 "$dir"/m*.log | tr '\n' ' ')" >&2; return 1; }
        done
        sleep 0.1
    done
    echo "etcd cluster not healthy in 15 s" >&2
    return 1
}

leader() {
    etcdctl --endpoints="$(endpoints)" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print(s["Endpoint"].rsplit(":", 1)[1]); sys.exit(0)
sys.exit(1)'
}

case "${1:-}" in
    install) install ;;
    start) [ $# -eq 2 ] && start "$2" ;;
    leader) leader ;;
    stop) [ $# -eq 2 ] && stop "$2" ;;
    *) echo "usage: $0 install | start DIR | leader DIR | stop DIR" >&2; exit 2 ;;
esac
