/* runtime/ internals shared across its files: cgroups, seccomp, capabilities, the task. */
#pragma once

#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/runtime.h"

/* ------------------------------------------------------------------ cgroup.c */

#define RT_CGROUP_PATH_MAX 512
/* V2, "no internal processes": when the daemon's own cgroup holds the daemon (and nothing
 * else), prepare_parent moves the daemon into <self>/RT_CGROUP_DAEMON_LEAF so <self> can
 * pass controllers down to <self>/<parent>/<task>; detection strips this leaf again. */
#define RT_CGROUP_DAEMON_LEAF "swarmd.daemon"

/* The detected layout. Mount points are absolute; self_* are this process's cgroups
 * relative to their mount ("/" for the mount's root). */
struct rt_cgroup_layout {
    enum rt_cgroup_mode mode;      /* V1 or V2 after detection */
    char root[RT_CGROUP_PATH_MAX]; /* mount root, "/sys/fs/cgroup" */
    /* V2: the unified mount (root itself; root/unified only when V2 is forced: on the
     * hybrid layout AUTO chooses V1). V1: one mount per controller. */
    char v2_mount[RT_CGROUP_PATH_MAX];
    char v1_memory[RT_CGROUP_PATH_MAX];
    char v1_cpu[RT_CGROUP_PATH_MAX];
    char v1_pids[RT_CGROUP_PATH_MAX];
    /* This process's own cgroup path per hierarchy (from /proc/self/cgroup); tasks nest
     * below it, under the parent name, never at a hierarchy's root. */
    char self_v2[RT_CGROUP_PATH_MAX];
    char self_memory[RT_CGROUP_PATH_MAX];
    char self_cpu[RT_CGROUP_PATH_MAX];
    char self_pids[RT_CGROUP_PATH_MAX];
};

struct rt_cgroup_limits {
    int64_t memory_bytes; /* 0: none */
    int64_t nano_cpus;    /* 0: none; quota = nano_cpus * period / 1e9 (min 1000), period
                             100000 us */
    int64_t pids;         /* 0: none */
};

/* A task's cgroup: directories per hierarchy (V2: one); "" where not created. */
struct rt_cgroup {
    enum rt_cgroup_mode mode;
    char v2[RT_CGROUP_PATH_MAX];
    char memory[RT_CGROUP_PATH_MAX];
    char cpu[RT_CGROUP_PATH_MAX];
    char pids[RT_CGROUP_PATH_MAX];
    int v2_fd; /* V2: O_DIRECTORY fd of the cgroup, for CLONE_INTO_CGROUP; -1 otherwise */
};

/* Detect from mountinfo under root (mode AUTO) or take the forced mode; read
 * self paths from proc_self_cgroup. NULL arguments mean "/sys/fs/cgroup",
 * "/proc/self/cgroup", "/proc/self/mountinfo" (tests pass fixture files). Fails naming
 * the missing controller (memory, cpu, pids) in the chosen mode. */
int rt__cgroup_detect(const char *root, enum rt_cgroup_mode mode, const char *proc_self_cgroup,
                      const char *mountinfo, struct rt_cgroup_layout *ret, char *errmsg,
                      size_t errmsg_size);
/* mkdir -p <self>/<parent> in every hierarchy; parent is one or more [A-Za-z0-9_.-]
 * components separated by '/'. V2: enable +memory +cpu +pids (those in <self>'s
 * cgroup.controllers) in <self> and every level of <parent>; may move this process into
 * <self>/RT_CGROUP_DAEMON_LEAF (see above), and fails if <self> holds other processes. */
int rt__cgroup_prepare_parent(const struct rt_cgroup_layout *l, const char *parent, char *errmsg,
                              size_t errmsg_size);
/* rmdir <self>/<parent> (innermost first) where empty; for shutdown and tests. */
int rt__cgroup_release_parent(const struct rt_cgroup_layout *l, const char *parent);
/* An empty cgroup (v2_fd -1): destroy on it does nothing. */
void rt__cgroup_init(struct rt_cgroup *cg);
/* Create <self>/<parent>/<name> (an empty leftover directory is reused; one whose
 * cgroup.procs lists processes is refused with -EEXIST and left alone) and write the limits
 * (before the task runs). lim may be NULL (no limits). On failure nothing is left and
 * ret is untouched; errmsg names the file ("cgroup: write <path>: <strerror>"). */
int rt__cgroup_create(const struct rt_cgroup_layout *l, const char *parent, const char *name,
                      const struct rt_cgroup_limits *lim, struct rt_cgroup *ret, char *errmsg,
                      size_t errmsg_size);
/* Move pid into the cgroup (cgroup.procs of every hierarchy). */
int rt__cgroup_attach(const struct rt_cgroup *cg, pid_t pid, char *errmsg, size_t errmsg_size);
/* Did the OOM killer kill something in this cgroup? (v2 memory.events oom_kill, v1
 * memory.oom_control oom_kill). 1 yes, 0 no, <0 unknown. */
int rt__cgroup_oom_killed(const struct rt_cgroup *cg);
/* Kill whatever is left (cgroup.kill on v2 when present, else SIGKILL each pid in
 * cgroup.procs, pinned by pidfd), then rmdir every directory, retrying up to 2 s while the
 * kernel empties it (EBUSY). Safe on a half-created or zeroed cgroup and when called
 * twice; removed directories' paths are cleared, v2_fd closed. First error or 0. */
int rt__cgroup_destroy(struct rt_cgroup *cg);

/* ------------------------------------------------------------------ seccomp.c */

struct rt_seccomp {
    struct sock_filter *filter;
    unsigned short len;
};

/* Export a libseccomp filter into a struct rt_seccomp (enosys_new: syscalls newer than
 * libseccomp knows answer ENOSYS so libc falls back). Shared by seccomp.c and
 * seccomp_json.c. */
int rt__seccomp_export(scmp_filter_ctx ctx, bool enosys_new, rt_seccomp **ret, char *errmsg,
                       size_t errmsg_size);

/* ------------------------------------------------------------------ caps.c */

/* Drop every bounding-set capability not in caps. Before setresuid (needs CAP_SETPCAP). */
int rt__caps_bound(uint64_t caps);
/* permitted = effective = caps, inheritable = 0, ambient cleared. After setresuid, for
 * root (a non-root uid keeps the empty sets the uid change left). Raw syscalls only. */
int rt__caps_set(uint64_t caps);
