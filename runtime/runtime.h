/* runtime: one isolated task — clone with new pid, mount, uts, ipc, net and cgroup
 * namespaces (optionally user), pivot_root into its root, cgroup limits (v1, v2 or the
 * hybrid layout), capabilities, no_new_privs, seccomp, and secrets on a per-task tmpfs.
 * No helper process per task: the task is a direct child of the caller, watched through
 * its pidfd. Knows nothing of the network or the cluster. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ capabilities */

/* Docker's default set: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID,
 * SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE. */
#define RT_CAPS_DEFAULT 0x00000000a80425fbULL

/* "NET_ADMIN" or "CAP_NET_ADMIN" (any case) -> bit number; "ALL" -> -2 sentinel via
 * *ret_all. -EINVAL for an unknown name. */
int rt_cap_parse(const char *name, int *ret_bit, bool *ret_all);
/* All capabilities this kernel knows (from /proc/sys/kernel/cap_last_cap). */
uint64_t rt_caps_all(void);
/* The capabilities this process may hand on (its permitted set): a task never gets more. */
uint64_t rt_caps_held(void);
const char *rt_cap_name(int bit);

/* ------------------------------------------------------------------ seccomp */

/* A compiled seccomp BPF program, ready to load in a task. */
typedef struct rt_seccomp rt_seccomp;

/* Docker's default profile for a task holding caps: an allowlist answering EPERM,
 * capability-gated syscalls allowed only with the capability, clone with namespace
 * flags refused, clone3 -> ENOSYS, keyctl, add_key, request_key, io_uring_*, kexec_* and
 * AF_ALG/AF_VSOCK sockets refused. Compiling costs milliseconds: cache the result. */
int rt_seccomp_default(uint64_t caps, rt_seccomp **ret, char *errmsg, size_t errmsg_size);
/* A profile in Docker's JSON format (defaultAction, syscalls[] with names/action/args/
 * includes/excludes caps, architectures). -EINVAL with errmsg naming what is wrong. */
int rt_seccomp_from_json(const char *json, size_t len, uint64_t caps, rt_seccomp **ret,
                         char *errmsg, size_t errmsg_size);
void rt_seccomp_free(rt_seccomp *s);
/* Install in the calling thread (after no_new_privs). Async-signal-safe. */
int rt_seccomp_load(const rt_seccomp *s);

/* ------------------------------------------------------------------ cgroups */

enum rt_cgroup_mode {
    RT_CGROUP_AUTO = 0, /* detect */
    RT_CGROUP_V1,       /* v1 controllers (a v2 mount beside them, "hybrid", is ignored) */
    RT_CGROUP_V2,       /* unified hierarchy */
};

/* ------------------------------------------------------------------ runtime */

struct rt_config {
    const char *run_dir;       /* per-task roots and secrets live here (tmpfs-backed
                                  /run/swarmd by default); created 0700 */
    const char *cgroup_parent; /* cgroup under which tasks go, default "swarmd" */
    const char *cgroup_root;   /* default "/sys/fs/cgroup" (tests point elsewhere) */
    enum rt_cgroup_mode cgroup_mode;
};

typedef struct rt_runtime rt_runtime;

/* Detect the cgroup layout, create the parent cgroup(s), compile the default seccomp
 * filter for the default capabilities. */
int rt_runtime_create(const struct rt_config *cfg, rt_runtime **ret, char *errmsg,
                      size_t errmsg_size);
void rt_runtime_free(rt_runtime *rt);
enum rt_cgroup_mode rt_runtime_cgroup_mode(const rt_runtime *rt);

/* ------------------------------------------------------------------ tasks */

struct rt_secret {
    const char *name; /* file name under /run/secrets: no '/', not "." or ".." */
    const uint8_t *data;
    size_t len;
    mode_t mode; /* default 0444 when 0 */
    uid_t uid;
    gid_t gid;
};

enum rt_network {
    RT_NET_NONE = 0, /* own network namespace: loopback up, nothing else */
    RT_NET_HOST = 1,
};

enum rt_seccomp_choice {
    RT_SECCOMP_DEFAULT = 0,
    RT_SECCOMP_UNCONFINED = 1,
    RT_SECCOMP_CUSTOM = 2, /* spec->seccomp */
};

struct rt_task_spec {
    const char *id;       /* names the cgroup and the task's dirs: [A-Za-z0-9_.-]{1,64} */
    char *const *argv;    /* argv[0] absolute, or looked up in the task's PATH */
    char *const *env;     /* KEY=VALUE, NULL-terminated; PATH gets a default if absent */
    const char *workdir;  /* default "/" */
    const char *hostname; /* default: the first 12 characters of id */
    bool user_set;        /* run as uid:gid (no supplementary groups) */
    uid_t uid;
    gid_t gid;
    const char *rootfs; /* NULL: read-only binds of the host's /usr /bin /sbin /lib* /etc */
    bool read_only;     /* read-only root with a writable /tmp tmpfs */
    enum rt_network network;
    uint64_t caps;   /* bounding = permitted = effective for root; empty effective
                        for another uid */
    bool privileged; /* all caps, no seccomp, no masked paths */
    enum rt_seccomp_choice seccomp_choice;
    const rt_seccomp *seccomp; /* RT_SECCOMP_CUSTOM */
    int64_t memory_limit;      /* bytes; 0: none */
    int64_t nano_cpus;         /* 500000000 = half a CPU; 0: none */
    int64_t pids_limit;        /* 0: none */
    const struct rt_secret *secrets;
    size_t n_secrets;
    bool userns;       /* map task root to an unprivileged host range */
    uid_t userns_base; /* first host uid of the range (default 100000) */
    int stdio[3];      /* the task's stdin, stdout, stderr; -1: /dev/null */
};

typedef struct rt_task rt_task;

struct rt_exit {
    int exit_code; /* what a shell shows: the status, or 128+signal */
    int signal;    /* 0 if it exited */
    bool oom;      /* the kernel's OOM killer ended it (exit_code 137) */
};

/* Start the task; never blocks for its lifetime. On failure nothing of it remains
 * (mounts, cgroup, process), and errmsg is one line naming the step that failed
 * ("rootfs: /srv/x: No such file or directory", "exec /bin/nope: No such file or
 * directory", "setuid 70000: Invalid argument", ...). */
int rt_task_start(rt_runtime *rt, const struct rt_task_spec *spec, rt_task **ret, char *errmsg,
                  size_t errmsg_size);
pid_t rt_task_pid(const rt_task *t);
/* Readable once the task has exited (watch it with uv_poll_t). */
int rt_task_pidfd(const rt_task *t);
int rt_task_signal(rt_task *t, int sig);
/* Collect the exit without blocking: -EAGAIN while it runs. */
int rt_task_reap(rt_task *t, struct rt_exit *ret);
/* After reap (or to abandon a task: it is SIGKILLed and reaped first): unmount and wipe
 * the secrets, remove the cgroup and the task's dirs, free t. */
int rt_task_cleanup(rt_task *t);

/* ------------------------------------------------------------------ leftovers */

/* Kill every process left in task cgroups under this runtime's parent cgroup (tasks of a
 * previous run of the daemon, which was killed before it could stop them) and remove
 * those cgroups. Run it before starting tasks: a task of this runtime that is running
 * would be killed too. *ret_killed (may be NULL): how many processes were found. */
int rt_runtime_kill_leftovers(rt_runtime *rt, unsigned *ret_killed);
