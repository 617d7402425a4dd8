/* The runtime and task objects (runtime.c, task.c). */
#pragma once

#include "runtime/internal.h"

#define RT_SECCOMP_CACHE 8

struct rt_runtime {
    struct rt_cgroup_layout cg;
    char *run_dir;
    char *cgroup_parent;
    char root_mountpoint[RT_CGROUP_PATH_MAX]; /* <run_dir>/root: each task mounts its root
                                                 here, inside its own mount namespace */
    struct {
        uint64_t caps;
        rt_seccomp *filter;
    } seccomp_cache[RT_SECCOMP_CACHE];
    unsigned n_seccomp_cache;
};

struct rt_task {
    rt_runtime *rt;
    pid_t pid;
    int pidfd;
    struct rt_cgroup cg;
    bool reaped;
    struct rt_exit exit;
    char id[65];
};

/* The default filter for caps, compiled once and cached. */
int rt__runtime_seccomp(rt_runtime *rt, uint64_t caps, const rt_seccomp **ret, char *errmsg,
                        size_t errmsg_size);
