/* Starting, signalling, reaping and cleaning up a task. The task is a direct child made
 * with clone3 (new namespaces, a pidfd, and on cgroup v2 straight into its cgroup); the
 * caller watches the pidfd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/child.h"
#include "runtime/task.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define USERNS_SIZE 65536

static bool valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

static bool valid_secret_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n <= 255 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

static int validate(const struct rt_task_spec *spec, char *errmsg, size_t size)
{
    if (!valid_id(spec->id)) {
        snprintf(errmsg, size, "task id must be 1-64 characters of [A-Za-z0-9_.-]");
        return -EINVAL;
    }
    if (!spec->argv || !spec->argv[0] || !spec->argv[0][0]) {
        snprintf(errmsg, size, "a command is required");
        return -EINVAL;
    }
    if (spec->workdir && spec->workdir[0] != '/') {
        snprintf(errmsg, size, "workdir %s: must be an absolute path", spec->workdir);
        return -EINVAL;
    }
    if (spec->rootfs && spec->rootfs[0] != '/') {
        snprintf(errmsg, size, "rootfs %s: must be an absolute path", spec->rootfs);
        return -EINVAL;
    }
    if (spec->hostname && (strlen(spec->hostname) == 0 || strlen(spec->hostname) > 64)) {
        snprintf(errmsg, size, "hostname must be 1-64 characters");
        return -EINVAL;
    }
    if (spec->memory_limit < 0 || spec->nano_cpus < 0 || spec->pids_limit < 0) {
        snprintf(errmsg, size, "limits must not be negative");
        return -EINVAL;
    }
    for (size_t i = 0; i < spec->n_secrets; i++) {
        const struct rt_secret *s = &spec->secrets[i];
        if (!valid_secret_name(s->name)) {
            snprintf(errmsg, size, "secret name %s: must be a file name (no '/')",
                     s->name ? s->name : "(null)");
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->secrets[j].name, s->name) == 0) {
                snprintf(errmsg, size, "secret %s is given twice", s->name);
                return -EINVAL;
            }
        if (s->mode & ~07777) {
            snprintf(errmsg, size, "secret %s: mode %o is not a file mode", s->name, s->mode);
            return -EINVAL;
        }
    }
    if (spec->seccomp_choice == RT_SECCOMP_CUSTOM && !spec->seccomp) {
        snprintf(errmsg, size, "a custom seccomp profile was chosen but none given");
        return -EINVAL;
    }
    return 0;
}

/* The task's PATH: its environment's, or the default (also added to the environment). */
static int build_env(const struct rt_task_spec *spec, char ***ret_env, const char **ret_path)
{
    size_t n = 0;
    const char *path = NULL;
    if (spec->env)
        for (; spec->env[n]; n++)
            if (strncmp(spec->env[n], "PATH=", 5) == 0)
                path = spec->env[n] + 5;
    char **env = calloc(n + 2, sizeof(*env));
    if (!env)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        env[i] = spec->env[i];
    if (!path) {
        env[n] = (char *)"PATH=" DEFAULT_PATH;
        path = DEFAULT_PATH;
    }
    *ret_env = env;
    *ret_path = path;
    return 0;
}

static int write_file(const char *path, const char *data, char *errmsg, size_t size)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data)) {
        int r = -errno;
        snprintf(errmsg, size, "user namespace: write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return r;
    }
    close(fd);
    return 0;
}

static int write_id_maps(pid_t pid, uid_t base, char *errmsg, size_t size)
{
    char path[64], map[64];
    snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)base, USERNS_SIZE);
    snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
    int r = write_file(path, map, errmsg, size);
    if (r < 0)
        return r;
    snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
    return write_file(path, map, errmsg, size);
}

static void kill_and_wait(pid_t pid, int pidfd)
{
    if (pidfd >= 0)
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    else
        kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int rt_task_start(rt_runtime *rt, const struct rt_task_spec *spec, rt_task **ret, char *errmsg,
                  size_t errmsg_size)
{
    struct rt_child c = {0};
    _cleanup_free_ char **env = NULL;
    int sync[2] = {-1, -1}, err[2] = {-1, -1}, devnull = -1;
    rt_task *t = NULL;
    char hostname[65];
    int r;

    r = validate(spec, errmsg, errmsg_size);
    if (r < 0)
        return r;
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->rt = rt;
    t->pid = -1;
    t->pidfd = -1;
    t->cg.v2_fd = -1;
    snprintf(t->id, sizeof(t->id), "%s", spec->id);

    /* what the task may do: never more than this process holds */
    uint64_t held = rt_caps_held();
    uint64_t caps = spec->privileged ? rt_caps_all() & held : spec->caps;
    if (caps & ~held) {
        int bit = __builtin_ctzll(caps & ~held);
        snprintf(errmsg, errmsg_size, "capability %s: this process does not hold it to give",
                 rt_cap_name(bit) ? rt_cap_name(bit) : "?");
        r = -EPERM;
        goto fail;
    }
    const rt_seccomp *filter = NULL;
    if (!spec->privileged) {
        if (spec->seccomp_choice == RT_SECCOMP_DEFAULT) {
            r = rt__runtime_seccomp(rt, caps, &filter, errmsg, errmsg_size);
            if (r < 0)
                goto fail;
        } else if (spec->seccomp_choice == RT_SECCOMP_CUSTOM) {
            filter = spec->seccomp;
        }
    }

    struct rt_cgroup_limits lim = {
        .memory_bytes = spec->memory_limit, .nano_cpus = spec->nano_cpus, .pids = spec->pids_limit};
    r = rt__cgroup_create(&rt->cg, rt->cgroup_parent, spec->id, &lim, &t->cg, errmsg, errmsg_size);
    if (r < 0)
        goto fail;

    r = build_env(spec, &env, &c.path);
    if (r < 0)
        goto fail;
    snprintf(hostname, sizeof(hostname), "%.12s", spec->id);
    c.argv = spec->argv;
    c.env = env;
    c.workdir = spec->workdir ? spec->workdir : "/";
    c.hostname = spec->hostname ? spec->hostname : hostname;
    c.root = rt->root_mountpoint;
    c.rootfs = spec->rootfs;
    c.read_only = spec->read_only;
    c.new_net = spec->network == RT_NET_NONE;
    c.privileged = spec->privileged;
    c.userns = spec->userns;
    c.user_set = spec->user_set;
    c.uid = spec->uid;
    c.gid = spec->gid;
    snprintf(c.uid_str, sizeof(c.uid_str), "%u", (unsigned)spec->uid);
    snprintf(c.gid_str, sizeof(c.gid_str), "%u", (unsigned)spec->gid);
    c.caps = caps;
    c.seccomp = filter;
    c.secrets = spec->secrets;
    c.n_secrets = spec->n_secrets;
    for (int i = 0; i < 3; i++) {
        c.stdio[i] = spec->stdio[i];
        if (c.stdio[i] < 0) {
            if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
                r = -errno;
                snprintf(errmsg, errmsg_size, "open /dev/null: %s", strerror(errno));
                goto fail;
            }
            c.stdio[i] = devnull;
        }
    }

    bool into_cgroup = t->cg.v2_fd >= 0;
    bool need_sync = !into_cgroup || spec->userns;
    if (pipe2(err, O_CLOEXEC) < 0 || (need_sync && pipe2(sync, O_CLOEXEC) < 0)) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "pipe: %s", strerror(errno));
        goto fail;
    }
    c.sync_fd = sync[0];
    c.err_fd = err[1];
    c.unshare_cgroup = !into_cgroup;

    uint64_t flags = CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
    if (spec->network == RT_NET_NONE)
        flags |= CLONE_NEWNET;
    if (spec->userns)
        flags |= CLONE_NEWUSER;
    if (into_cgroup)
        flags |= CLONE_INTO_CGROUP | CLONE_NEWCGROUP;
    int pidfd = -1;
    struct clone_args args = {
        .flags = flags,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
        .cgroup = into_cgroup ? (uint64_t)t->cg.v2_fd : 0,
    };
    /* no handler of the caller may run in the child before it resets them all
     * (libuv's would write to the caller's own signal pipe) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0)
        rt__child_main(&c); /* never returns */
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = clone_errno;
    if (pid < 0) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "clone3: %s", strerror(errno));
        goto fail;
    }
    t->pid = (pid_t)pid;
    t->pidfd = pidfd;
    close(err[1]);
    err[1] = -1;
    if (sync[0] >= 0) {
        close(sync[0]);
        sync[0] = -1;
    }

    /* the caller's part: id maps, then the cgroup (v1), then let the task go on */
    if (spec->userns) {
        r = write_id_maps(t->pid, spec->userns_base ? spec->userns_base : 100000, errmsg,
                          errmsg_size);
        if (r < 0)
            goto fail_child;
    }
    if (!into_cgroup) {
        r = rt__cgroup_attach(&t->cg, t->pid, errmsg, errmsg_size);
        if (r < 0)
            goto fail_child;
    }
    if (sync[1] >= 0) {
        if (write(sync[1], "g", 1) != 1) {
            r = -errno;
            snprintf(errmsg, errmsg_size, "start: %s", strerror(errno));
            goto fail_child;
        }
        close(sync[1]);
        sync[1] = -1;
    }

    /* EOF: the exec happened; a record: a step failed */
    struct rt_child_error ce;
    ssize_t n;
    do
        n = read(err[0], &ce, sizeof(ce));
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        ce.msg[sizeof(ce.msg) - 1] = '\0';
        r = ce.err ? -ce.err : -EIO;
        snprintf(errmsg, errmsg_size, "%s: %s", ce.msg, strerror(ce.err ? ce.err : EIO));
        goto fail_child;
    }
    close(err[0]);
    if (devnull >= 0)
        close(devnull);
    if (t->cg.v2_fd >= 0) {
        close(t->cg.v2_fd);
        t->cg.v2_fd = -1;
    }
    *ret = t;
    return 0;

fail_child:
    kill_and_wait(t->pid, t->pidfd);
fail:
    for (int i = 0; i < 2; i++) {
        if (sync[i] >= 0)
            close(sync[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    if (devnull >= 0)
        close(devnull);
    if (t->pidfd >= 0)
        close(t->pidfd);
    rt__cgroup_destroy(&t->cg);
    free(t);
    return r;
}

pid_t rt_task_pid(const rt_task *t)
{
    return t->pid;
}

int rt_task_pidfd(const rt_task *t)
{
    return t->pidfd;
}

int rt_task_signal(rt_task *t, int sig)
{
    if (t->reaped)
        return -ESRCH;
    if (syscall(SYS_pidfd_send_signal, t->pidfd, sig, NULL, 0) < 0)
        return -errno;
    return 0;
}

static void fill_exit(rt_task *t, const siginfo_t *si)
{
    struct rt_exit e = {0};
    if (si->si_code == CLD_EXITED) {
        e.exit_code = si->si_status;
    } else {
        e.signal = si->si_status;
        e.exit_code = 128 + si->si_status;
        e.oom = si->si_status == SIGKILL && rt__cgroup_oom_killed(&t->cg) == 1;
    }
    t->exit = e;
    t->reaped = true;
}

int rt_task_reap(rt_task *t, struct rt_exit *ret)
{
    if (!t->reaped) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PIDFD, (id_t)t->pidfd, &si, WEXITED | WNOHANG) < 0)
            return -errno;
        if (si.si_pid == 0)
            return -EAGAIN;
        fill_exit(t, &si);
    }
    *ret = t->exit;
    return 0;
}

int rt_task_cleanup(rt_task *t)
{
    if (!t)
        return 0;
    if (!t->reaped) {
        siginfo_t si;
        syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL, 0);
        memset(&si, 0, sizeof(si));
        for (;;) {
            if (waitid(P_PIDFD, (id_t)t->pidfd, &si, WEXITED) == 0)
                break;
            if (errno == EAGAIN) { /* a non-blocking pidfd (the caller polled it) */
                struct pollfd p = {.fd = t->pidfd, .events = POLLIN};
                poll(&p, 1, 1000);
                continue;
            }
            if (errno != EINTR)
                break;
        }
        fill_exit(t, &si);
    }
    int r = rt__cgroup_destroy(&t->cg);
    if (t->pidfd >= 0)
        close(t->pidfd);
    free(t);
    return r;
}
