# --seccomp PROFILE.json (Docker's format): a profile that allows everything but refuses
# keyrings, clone3 (ENOSYS) and AF_ALG sockets, checked from inside; bad profiles refused.
# Skipped (77) while run-task says JSON profiles are "not supported yet".
source "${RT_LIB:-$(dirname "$0")/lib.sh}"

# Docker's format: default allow, a few names refused with their errno
cat >"$T/profile.json" <<'JSON'
{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["keyctl", "add_key", "request_key"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "args": [{"index": 0, "value": 38, "op": "SCMP_CMP_EQ"}]}
  ]
}
JSON

run_task probe-json --rootfs "$ROOTFS" --seccomp "$T/profile.json" -- "$P" nnp
if grep -q "not supported yet" "$T/err"; then
    echo "skip: run-task: $(cat "$T/err")"
    exit 77
fi
expect_rc "a JSON profile is accepted" 0

run_task json --rootfs "$ROOTFS" --seccomp "$T/profile.json" --cap-drop ALL -- \
    "$P" nnp + caps 0 0
expect_probe_ok "--seccomp PROFILE.json: the task starts under it"
# the refused calls answer as the profile says, the rest is allowed
run_task json-calls --rootfs "$ROOTFS" --seccomp "$T/profile.json" --cap-add SYS_ADMIN -- \
    "$P" sys keyctl=EPERM add_key=EPERM request_key=EPERM clone3=ENOSYS af_alg=EPERM \
    af_inet=0 io_uring_setup=EFAULT sethostname=0 unshare=0 + nnp
expect_probe_ok "--seccomp PROFILE.json: its refusals (keyrings, clone3 ENOSYS, AF_ALG) and nothing else"
run_task json-status --rootfs "$ROOTFS" --seccomp "$T/profile.json" -- "$P" seccomp
if grep -q "^ok Seccomp: 2" "$T/out"; then
    pass "--seccomp PROFILE.json: Seccomp 2"
else
    fail "--seccomp PROFILE.json: $(grep Seccomp "$T/out")"
fi

printf '{"defaultAction": "SCMP_ACT_NOPE"}' >"$T/bad.json"
run_task bad-json --rootfs "$ROOTFS" --seccomp "$T/bad.json" -- "$P" pid1
expect_rc "a profile with an unknown action -> 125 naming it" 125 "SCMP_ACT_NOPE|defaultAction"
printf '{"defaultAction": ' >"$T/trunc.json"
run_task trunc-json --rootfs "$ROOTFS" --seccomp "$T/trunc.json" -- "$P" pid1
expect_rc "a truncated profile -> 125" 125 "seccomp"
finish
