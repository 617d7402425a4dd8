#!/bin/sh
# peer-docker.sh: start/stop an isolated, loopback-only Docker engine (dockerd + containerd) for benchmarks.
#   bench/peer-docker.sh start|stop|status
# Everything lives under $PEER_DIR (default /tmp/swarmd-bench-docker): its own containerd
# socket/state/root, dockerd data-root/exec-root/pidfile and unix socket. A system Docker
# (/var/run/docker.sock, /var/lib/docker, /run/containerd) is never used or touched.
# After `start`, use:  export DOCKER_HOST=unix://$PEER_DIR/docker.sock
# Several engines (nodes of one swarm) side by side: one $PEER_DIR each, and each its own
# $PEER_GW_IF (default swbench-gw0, at most 15 characters) and $PEER_GW_SUBNET.
set -u

DIR=${PEER_DIR:-/tmp/swarmd-bench-docker}
SOCK="$DIR/docker.sock"
CTRD_SOCK="$DIR/containerd/containerd.sock"
GW_IF=${PEER_GW_IF:-swbench-gw0}
GW_SUBNET=${PEER_GW_SUBNET:-172.30.254.0/24}
START_TIMEOUT=${PEER_START_TIMEOUT:-60}
# The Debian CLI matches the Debian engine; a newer CLI elsewhere on PATH also works.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker 2>/dev/null || echo docker)

die() {
    echo "peer-docker: $*" >&2
    exit 1
}

dk() { "$DOCKER" -H "unix://$SOCK" "$@"; }
# Bounded query: a socket that exists but does not answer must not hang us.
dk_info() { timeout 5 "$DOCKER" -H "unix://$SOCK" info "$@"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_pkgs() {
    if command -v dockerd >/dev/null 2>&1 && command -v containerd >/dev/null 2>&1 &&
        [ -x /usr/bin/docker ]; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "docker.io is not installed and we are not root to install it"
    echo "peer-docker: installing docker.io (apt-get)" >&2
    # policy-rc.d (if present) keeps the package from starting a system daemon.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >"$DIR/apt.log" 2>&1 ||
        { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install docker.io failed (log: $DIR/apt.log)"; }
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
    DOCKER=/usr/bin/docker
}

# Wait until CMD succeeds or SECS pass; $3 names the pidfile of the process we wait on.
wait_for() {
    secs=$1 pidf=$2
    shift 2
    i=0
    while [ "$i" -lt $((secs * 10)) ]; do
        "$@" >/dev/null 2>&1 && return 0
        alive "$pidf" || return 2
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

start() {
    if alive "$DIR/dockerd.pid" && dk_info >/dev/null 2>&1; then
        echo "peer-docker: already running; export DOCKER_HOST=unix://$SOCK"
        return 0
    fi
    if [ -e "$DIR" ]; then
        echo "peer-docker: cleaning a previous run in $DIR" >&2
        stop >/dev/null 2>&1
    fi
    mkdir -p "$DIR/containerd/root" "$DIR/containerd/state" "$DIR/data" "$DIR/exec" ||
        die "cannot create $DIR"
    install_pkgs

    # containerd: own config so nothing defaults to /run/containerd or /var/lib/containerd.
    cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = "$DIR/containerd/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
EOF
    containerd --config "$DIR/containerd/config.toml" >"$DIR/containerd.log" 2>&1 &
    echo $! >"$DIR/containerd.pid"
    wait_for 20 "$DIR/containerd.pid" test -S "$CTRD_SOCK"
    case $? in
    0) ;;
    2) tail -n 15 "$DIR/containerd.log" >&2; die "containerd exited (log: $DIR/containerd.log)" ;;
    *) tail -n 15 "$DIR/containerd.log" >&2; die "containerd socket did not appear in 20 s" ;;
    esac

    # dockerd: loopback only (unix socket, no TCP), no iptables, no bridge, vfs storage.
    # Own daemon.json: no /etc/docker/daemon.json, and the trust key stays in $DIR.
    printf '{"deprecated-key-path": "%s/key.json"}\n' "$DIR" >"$DIR/daemon.json"
    dockerd --config-file "$DIR/daemon.json" --containerd "$CTRD_SOCK" \
        --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/dockerd.real.pid" \
        -H "unix://$SOCK" --storage-driver=vfs --iptables=false --ip6tables=false \
        --bridge=none --ip-masq=false --userland-proxy=false \
        >"$DIR/dockerd.log" 2>&1 &
    echo $! >"$DIR/dockerd.pid"
    wait_for "$START_TIMEOUT" "$DIR/dockerd.pid" dk_info
    case $? in
    0) ;;
    2) tail -n 15 "$DIR/dockerd.log" >&2; stop >/dev/null 2>&1; die "dockerd exited (log kept above)" ;;
    *)
        tail -n 15 "$DIR/dockerd.log" >&2
        stop >/dev/null 2>&1
        die "dockerd did not answer within ${START_TIMEOUT}s"
        ;;
    esac
    # Swarm puts a bridge named docker_gwbridge in the host namespace; create the network
    # ourselves under another interface name so a system Docker's bridge is never shared.
    dk network inspect docker_gwbridge >/dev/null 2>&1 ||
        dk network create --driver bridge --subnet "$GW_SUBNET" \
            -o com.docker.network.bridge.name="$GW_IF" \
            -o com.docker.network.bridge.enable_icc=false \
            -o com.docker.network.bridge.enable_ip_masquerade=false \
            docker_gwbridge >/dev/null ||
        { stop >/dev/null 2>&1; die "could not create docker_gwbridge ($GW_IF, $GW_SUBNET)"; }
    echo "peer-docker: running ($(dk version --format '{{.Server.Version}}' 2>/dev/null))"
    echo "peer-docker: socket unix://$SOCK"
    echo "export DOCKER_HOST=unix://$SOCK"
}

kill_wait() {
    pidf=$1
    alive "$pidf" || return 0
    pid=$(cat "$pidf")
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "peer-docker: $pidf ($pid) ignored SIGTERM for 15 s, killing" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
}

stop() {
    [ -d "$DIR" ] || { echo "peer-docker: not running"; return 0; }
    if alive "$DIR/dockerd.pid"; then
        timeout 20 "$DOCKER" -H "unix://$SOCK" swarm leave --force >/dev/null 2>&1
        # Containers this engine started (their shims outlive dockerd otherwise).
        ids=$(timeout 10 "$DOCKER" -H "unix://$SOCK" ps -aq 2>/dev/null)
        # shellcheck disable=SC2086 # one argument per container ID
        [ -n "$ids" ] && timeout 30 "$DOCKER" -H "unix://$SOCK" rm -f $ids >/dev/null 2>&1
        timeout 10 "$DOCKER" -H "unix://$SOCK" network rm docker_gwbridge >/dev/null 2>&1
    fi
    kill_wait "$DIR/dockerd.pid"
    kill_wait "$DIR/containerd.pid"
    # Only our own bridge name: never a system Docker's docker_gwbridge.
    ip link show "$GW_IF" >/dev/null 2>&1 && ip link del "$GW_IF" 2>/dev/null
    # vfs layers and netns bind mounts may remain mounted under our dirs only.
    if command -v findmnt >/dev/null 2>&1; then
        findmnt -rn -o TARGET | grep "^$DIR/" | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null
        done
    fi
    rm -rf "$DIR" || die "could not remove $DIR"
    echo "peer-docker: stopped, $DIR removed"
}

status() {
    if alive "$DIR/dockerd.pid" && dk_info >/dev/null 2>&1; then
        echo "peer-docker: running, swarm $(dk_info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)"
        echo "export DOCKER_HOST=unix://$SOCK"
        return 0
    fi
    echo "peer-docker: not running"
    return 1
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status   (dir: \$PEER_DIR, default /tmp/swarmd-bench-docker)" >&2
    exit 2
    ;;
esac
