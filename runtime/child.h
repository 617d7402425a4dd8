/* What the task side of a start needs, prepared by the caller before clone3 (the child
 * may not allocate), and how it reports a failed step. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/runtime.h"

#define RT_CHILD_PATH 4096
#define RT_CHILD_EXIT_SETUP 127

struct rt_child {
    char *const *argv;
    char *const *env;
    const char *path; /* the PATH to search for argv[0] */
    const char *workdir;
    const char *hostname;
    const char *root;   /* the mountpoint the task's root is built on */
    const char *rootfs; /* NULL: the default root */
    bool read_only;
    bool new_net;
    bool privileged;
    bool unshare_cgroup; /* v1: enter a cgroup namespace after being attached */
    bool userns;         /* become root of the new user namespace once it is mapped */
    bool user_set;
    uid_t uid;
    gid_t gid;
    char uid_str[16], gid_str[16];
    uint64_t caps;
    const struct rt_seccomp *seccomp; /* NULL: none */
    const struct rt_secret *secrets;
    size_t n_secrets;
    int stdio[3];
    int sync_fd; /* read end; -1 when the caller has nothing to do before the task goes on */
    int err_fd;  /* write end, close-on-exec: EOF at the caller means exec succeeded */
};

/* One failed step, written whole to err_fd. */
struct rt_child_error {
    int err;
    char msg[240];
};

/* Never returns: execs the task or reports and _exits(RT_CHILD_EXIT_SETUP). */
void rt__child_main(const struct rt_child *c) __attribute__((noreturn));
