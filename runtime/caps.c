/* Capabilities: names, the bounding set, and the task's permitted/effective sets. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/internal.h"

static const char *const cap_names[] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};
#define N_CAP_NAMES ((int)SW_ARRAY_SIZE(cap_names))

static int last_cap(void)
{
    static int cached = -1;
    if (cached >= 0)
        return cached;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    int v = N_CAP_NAMES - 1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1 || v < 0 || v > 63)
            v = N_CAP_NAMES - 1;
        fclose(f);
    }
    cached = v;
    return v;
}

uint64_t rt_caps_all(void)
{
    int last = last_cap();
    return last >= 63 ? UINT64_MAX : (1ULL << (last + 1)) - 1;
}

const char *rt_cap_name(int bit)
{
    return bit >= 0 && bit < N_CAP_NAMES ? cap_names[bit] : NULL;
}

int rt_cap_parse(const char *name, int *ret_bit, bool *ret_all)
{
    if (!name || !*name)
        return -EINVAL;
    if (strncasecmp(name, "CAP_", 4) == 0)
        name += 4;
    if (strcasecmp(name, "ALL") == 0) {
        *ret_all = true;
        *ret_bit = -1;
        return 0;
    }
    for (int i = 0; i < N_CAP_NAMES; i++)
        if (strcasecmp(name, cap_names[i]) == 0) {
            if (i > last_cap())
                return -EOPNOTSUPP; /* this kernel does not know it */
            *ret_all = false;
            *ret_bit = i;
            return 0;
        }
    return -EINVAL;
}

int rt__caps_bound(uint64_t caps)
{
    int last = last_cap();
    for (int i = 0; i <= last; i++) {
        if (caps & (1ULL << i))
            continue;
        if (prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL)
            return -errno;
    }
    return 0;
}

int rt__caps_set(uint64_t caps)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[0].permitted = data[0].effective = (uint32_t)caps;
    data[1].permitted = data[1].effective = (uint32_t)(caps >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

uint64_t rt_caps_held(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0)
        return 0;
    return (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
}
