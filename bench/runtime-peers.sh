#!/bin/sh
# bench/runtime-peers.sh: the OCI bundle bench-runtime runs under crun and runc (busybox rootfs,
# Docker's caps, masked paths, seccomp, limits, a /run/secrets tmpfs with one secret).
#   runtime-peers.sh install       apt-get install what is missing (crun runc busybox-static jq
#                                  golang-github-containers-common)
#   runtime-peers.sh bundle DIR    DIR/rootfs, DIR/config.json, DIR/secret (DIR must exist)
# Prints one line naming what is missing and exits 1 when the bundle cannot be made.
set -eu

SECCOMP_SRC=${SECCOMP_SRC:-/usr/share/containers/seccomp.json}
# Docker's default 14 (RT_CAPS_DEFAULT in runtime/runtime.h)
CAPS='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW",
"CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT",
"CAP_KILL","CAP_AUDIT_WRITE"]'

have() { command -v "$1" >/dev/null 2>&1; }

install_missing() {
    pkgs=""
    have crun || pkgs="$pkgs crun"
    have runc || pkgs="$pkgs runc"
    have jq || pkgs="$pkgs jq"
    static_busybox || pkgs="$pkgs busybox-static"
    [ -f "$SECCOMP_SRC" ] || pkgs="$pkgs golang-github-containers-common"
    [ -z "$pkgs" ] && return 0
    have apt-get || { echo "missing:$pkgs (no apt-get)"; return 1; }
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null 2>&1 ||
        echo "apt-get install$pkgs failed" >&2
    return 0
}

# busybox-static replaces the dynamic busybox; the rootfs needs the static one.
static_busybox() {
    [ -x /bin/busybox ] &&
        dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'
}

# Docker's seccomp.json format -> the OCI linux.seccomp object for x86_64 and the caps above:
# rules kept when their includes.caps are all held and no excludes.caps is; arch filters too.
oci_seccomp() {
    jq --argjson caps "$CAPS" '
      def held($c): ($caps | index($c)) != null;
      def arch_ok($a): ($a == null) or ($a | index("amd64")) != null;
      {
        defaultAction: .defaultAction,
        defaultErrnoRet: .defaultErrnoRet,
        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls: [ .syscalls[]
          | select(((.includes.caps // []) | all(held(.))))
          | select(((.excludes.caps // []) | any(held(.))) | not)
          | select(arch_ok(.includes.arches))
          | select(((.excludes.arches // []) | index("amd64")) == null)
          | {names, action} + (if .errnoRet then {errnoRet} else {} end)
                            + (if (.args // []) != [] then {args} else {} end) ]
      } | with_entries(select(.value != null))' "$SECCOMP_SRC"
}

bundle() {
    dir=$1
    for t in crun jq; do have $t || { echo "$t is not installed"; exit 1; }; done
    [ -f "$SECCOMP_SRC" ] || { echo "no seccomp profile at $SECCOMP_SRC"; exit 1; }
    static_busybox || { echo "/bin/busybox is not static (busybox-static)"; exit 1; }
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" \
        "$dir/rootfs/run" "$dir/rootfs/tmp" "$dir/rootfs/etc"
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    for c in sh true sleep cat; do ln -sf busybox "$dir/rootfs/bin/$c"; done
    # the secret lives on the bundle's dir (a tmpfs under /run), bind-mounted read-only
    printf '0123456789abcdef' >"$dir/secret"
    chmod 0400 "$dir/secret"
    oci_seccomp >"$dir/seccomp.json"
    (cd "$dir" && rm -f config.json && crun spec >/dev/null)
    jq --argjson caps "$CAPS" --slurpfile sc "$dir/seccomp.json" --arg secret "$dir/secret" '
      .process.terminal = false
      | .process.args = ["/bin/true"]
      | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps,
                                 inheritable: [], ambient: []}
      | .root.path = "rootfs"
      | .hostname = "bench"
      | .mounts += [
          {destination: "/run/secrets", type: "tmpfs", source: "tmpfs",
           options: ["nosuid", "nodev", "noexec", "mode=0755", "size=64k"]},
          {destination: "/run/secrets/s", type: "bind", source: $secret,
           options: ["bind", "ro", "nosuid", "nodev", "noexec"]}]
      | .linux.namespaces += [{type: "cgroup"}]
      | .linux.maskedPaths += ["/proc/interrupts", "/sys/devices/virtual/powercap"]
      | .linux.resources.memory = {limit: 67108864}
      | .linux.resources.pids = {limit: 64}
      | .linux.resources.cpu = {quota: 50000, period: 100000}
      | .linux.seccomp = $sc[0]' "$dir/config.json" >"$dir/config.json.new"
    mv "$dir/config.json.new" "$dir/config.json"
}

case "${1:-}" in
    install) install_missing ;;
    bundle)
        [ $# -eq 2 ] && [ -d "$2" ] || { echo "usage: $0 bundle DIR (an existing dir)"; exit 1; }
        bundle "$2"
        ;;
    *)
        echo "usage: $0 install | bundle DIR" >&2
        exit 2
        ;;
esac
