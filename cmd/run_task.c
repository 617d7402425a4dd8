/* swarmd run-task: run one isolated task by hand, the way `crun run` or `docker run` is
 * used to try a configuration. Parsing and wiring only; runtime/ does the work. */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cmd/run_task.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/ids.h"
#include "common/swtime.h"
#include "runtime/runtime.h"

#define SECRET_MAX (500 * 1024)
#define MAX_LIST 64

static const char usage[] =
    "Usage: swarmd run-task [OPTIONS] -- COMMAND [ARG...]\n"
    "\n"
    "Run one task in the foreground with the isolation a worker gives it: its own pid,\n"
    "mount, uts, ipc, net and cgroup namespaces, cgroup limits, Docker's default\n"
    "capabilities, no_new_privs and the default seccomp profile. stdin/stdout/stderr pass\n"
    "through; the exit status is the task's (128+N when killed by signal N; 137 on OOM).\n"
    "If the task cannot start: 127 command not found, 126 not executable, 125 any other\n"
    "step (the one-line error names it); 2 for a usage error. SIGINT/SIGTERM/SIGHUP/SIGQUIT\n"
    "are passed to the task; as pid 1 it ignores those it has no handler for, so 10 s after\n"
    "a SIGINT or SIGTERM (or at a second one) it is killed.\n"
    "\n"
    "Options:\n"
    "  --user UID[:GID]           Run as this user (numeric, or a name from the root's\n"
    "                             /etc/passwd); a non-root user gets no capabilities\n"
    "  --read-only                Read-only root filesystem, with a writable /tmp tmpfs\n"
    "  --limit-memory SIZE        Memory limit, e.g. 64M, 1G (units b, k, m, g)\n"
    "  --limit-cpu CPUS           CPU limit, e.g. 0.5 (a CFS quota per 100 ms)\n"
    "  --limit-pids N             Maximum number of processes\n"
    "  --cap-add CAP              Add a capability (repeatable; ALL for every one)\n"
    "  --cap-drop CAP             Drop a capability (repeatable; ALL for every one)\n"
    "  --hostname NAME            Task hostname (default: the first 12 characters of the id)\n"
    "  -e, --env KEY=VALUE        Set an environment variable (repeatable)\n"
    "  -w, --workdir DIR          Working directory inside the task (default /)\n"
    "  --secret-file NAME=FILE[,mode=0444][,uid=0][,gid=0]\n"
    "                             Expose FILE read-only at /run/secrets/NAME, on a tmpfs\n"
    "                             (repeatable; at most 500 KiB each)\n"
    "  --rootfs DIR               Root filesystem (default: read-only binds of the host's\n"
    "                             /usr, /bin, /sbin, /lib*, /etc)\n"
    "  --network none|host        none (default): loopback only; host: the host's network\n"
    "  --seccomp default|unconfined|PROFILE.json\n"
    "                             Seccomp profile (Docker's JSON format for a file)\n"
    "  --privileged               All capabilities, no seccomp, no masked paths\n"
    "  --userns                   Map root in the task to the host range 100000-165535\n"
    "  --id ID                    Task id (default: random); names its cgroup\n"
    "  -h, --help                 Show this help\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("swarmd run-task: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see 'swarmd run-task --help')\n", stderr);
    return 2;
}

/* "64M" -> bytes; units b, k, m, g (case-insensitive, optional "b"/"ib" suffix). */
static int parse_size(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    unsigned long long mult = 1;
    switch (*end) {
        case '\0':
            break;
        case 'b':
        case 'B':
            mult = 1;
            end++;
            break;
        case 'k':
        case 'K':
            mult = 1ULL << 10;
            end++;
            break;
        case 'm':
        case 'M':
            mult = 1ULL << 20;
            end++;
            break;
        case 'g':
        case 'G':
            mult = 1ULL << 30;
            end++;
            break;
        default:
            return -EINVAL;
    }
    if (mult > 1 && (*end == 'i' || *end == 'I'))
        end++;
    if (mult > 1 && (*end == 'b' || *end == 'B'))
        end++;
    if (*end || v == 0 || v > (unsigned long long)INT64_MAX / mult)
        return -EINVAL;
    *ret = (int64_t)(v * mult);
    return 0;
}

/* "0.5" -> 500000000 nano CPUs. */
static int parse_cpus(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    double v = strtod(s, &end);
    if (errno || *end || v <= 0 || v > 4096)
        return -EINVAL;
    *ret = (int64_t)(v * 1e9 + 0.5);
    return *ret > 0 ? 0 : -EINVAL;
}

static int parse_u32(const char *s, uint32_t *ret, int base)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+')
        return -EINVAL;
    unsigned long v = strtoul(s, &end, base);
    if (errno || *end || v > UINT32_MAX)
        return -EINVAL;
    *ret = (uint32_t)v;
    return 0;
}

/* Look a name up in <root>/etc/passwd (field 2 = uid, 3 = gid) or /etc/group. */
static int lookup_id(const char *root, const char *file, const char *name, uint32_t *ret_id,
                     uint32_t *ret_gid)
{
    char path[4096];
    _cleanup_free_ char *text = NULL;
    snprintf(path, sizeof(path), "%s%s", root ? root : "", file);
    if (sw_read_file(path, 4 << 20, &text, NULL) < 0)
        return -ENOENT;
    size_t nlen = strlen(name);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, name, nlen) != 0 || line[nlen] != ':')
            continue;
        /* name:x:uid:gid:... */
        char *f = strchr(line + nlen + 1, ':');
        if (!f)
            return -EINVAL;
        char *idstr = f + 1, *gidstr = strchr(idstr, ':');
        if (gidstr)
            *gidstr++ = '\0';
        if (parse_u32(idstr, ret_id, 10) < 0)
            return -EINVAL;
        if (ret_gid) {
            char *g_end = gidstr ? strchr(gidstr, ':') : NULL;
            if (g_end)
                *g_end = '\0';
            if (!gidstr || parse_u32(gidstr, ret_gid, 10) < 0)
                return -EINVAL;
        }
        return 0;
    }
    return -ENOENT;
}

static int parse_user(const char *s, const char *rootfs, uid_t *uid, gid_t *gid)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf) || !*s)
        return usage_error("invalid --user '%s'", s);
    snprintf(buf, sizeof(buf), "%s", s);
    char *g = strchr(buf, ':');
    if (g)
        *g++ = '\0';
    uint32_t u, gg = 0, pw_gid = 0;
    bool have_pw_gid = false;
    if (parse_u32(buf, &u, 10) < 0) {
        if (lookup_id(rootfs, "/etc/passwd", buf, &u, &pw_gid) < 0)
            return usage_error("--user %s: no such user in %s/etc/passwd", buf,
                               rootfs ? rootfs : "");
        have_pw_gid = true;
    }
    if (g) {
        if (parse_u32(g, &gg, 10) < 0 && lookup_id(rootfs, "/etc/group", g, &gg, NULL) < 0)
            return usage_error("--user: no such group '%s'", g);
    } else {
        gg = have_pw_gid ? pw_gid : u;
    }
    *uid = u;
    *gid = gg;
    return 0;
}

struct secret_arg {
    char name[256];
    struct sw_secret data;
    uint32_t mode, uid, gid;
};

static int parse_secret(const char *s, struct secret_arg *ret)
{
    char buf[4096];
    if (strlen(s) >= sizeof(buf))
        return usage_error("--secret-file: argument too long");
    snprintf(buf, sizeof(buf), "%s", s);
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf)
        return usage_error("--secret-file '%s': expected NAME=FILE[,mode=…][,uid=…][,gid=…]", s);
    *eq = '\0';
    if (strlen(buf) >= sizeof(ret->name) || strchr(buf, '/') || !strcmp(buf, ".") ||
        !strcmp(buf, ".."))
        return usage_error("--secret-file: '%s' is not a valid secret name", buf);
    snprintf(ret->name, sizeof(ret->name), "%s", buf);
    char *file = eq + 1, *opt = strchr(file, ',');
    if (opt)
        *opt++ = '\0';
    ret->mode = 0444;
    while (opt && *opt) {
        char *next = strchr(opt, ',');
        if (next)
            *next++ = '\0';
        if (!strncmp(opt, "mode=", 5)) {
            if (parse_u32(opt + 5, &ret->mode, 8) < 0 || ret->mode > 07777)
                return usage_error("--secret-file %s: invalid mode '%s'", ret->name, opt + 5);
        } else if (!strncmp(opt, "uid=", 4)) {
            if (parse_u32(opt + 4, &ret->uid, 10) < 0)
                return usage_error("--secret-file %s: invalid uid '%s'", ret->name, opt + 4);
        } else if (!strncmp(opt, "gid=", 4)) {
            if (parse_u32(opt + 4, &ret->gid, 10) < 0)
                return usage_error("--secret-file %s: invalid gid '%s'", ret->name, opt + 4);
        } else {
            return usage_error("--secret-file %s: unknown option '%s'", ret->name, opt);
        }
        opt = next;
    }
    char *data = NULL;
    size_t len = 0;
    int r = sw_read_file(file, SECRET_MAX, &data, &len);
    if (r < 0) {
        fprintf(stderr, "swarmd run-task: secret %s: cannot read %s: %s\n", ret->name, file,
                r == -EFBIG ? "larger than 500 KiB" : strerror(-r));
        return 125;
    }
    ret->data.data = (unsigned char *)data;
    ret->data.len = len;
    return 0;
}

static int apply_cap(const char *name, bool add, uint64_t *adds, uint64_t *drops, bool *add_all,
                     bool *drop_all)
{
    int bit;
    bool all;
    int r = rt_cap_parse(name, &bit, &all);
    if (r == -EOPNOTSUPP)
        return usage_error("capability %s is unknown to this kernel", name);
    if (r < 0)
        return usage_error("unknown capability '%s'", name);
    if (all)
        *(add ? add_all : drop_all) = true;
    else
        *(add ? adds : drops) |= 1ULL << bit;
    return 0;
}

enum {
    OPT_USER = 0x100,
    OPT_READ_ONLY,
    OPT_LIMIT_MEMORY,
    OPT_LIMIT_CPU,
    OPT_LIMIT_PIDS,
    OPT_CAP_ADD,
    OPT_CAP_DROP,
    OPT_HOSTNAME,
    OPT_SECRET,
    OPT_ROOTFS,
    OPT_NETWORK,
    OPT_SECCOMP,
    OPT_PRIVILEGED,
    OPT_USERNS,
    OPT_ID,
};

/* Wait for the task, passing on the signals a terminal or a supervisor sends. The task is
 * pid 1 of its namespace, which the kernel shields from signals it has no handler for: if
 * it is still there 10 s after a SIGINT/SIGTERM, or at a second one, it is killed (as
 * `docker stop` does). */
#define STOP_GRACE_MS 10000

static int wait_task(rt_task *t, struct rt_exit *ex)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int stops = 0;
    uint64_t deadline = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = rt_task_pidfd(t), .events = POLLIN},
                              {.fd = sfd, .events = POLLIN}};
        int timeout = -1;
        if (deadline) {
            uint64_t now = sw_now_monotonic_ns();
            timeout = now >= deadline ? 0 : (int)((deadline - now) / SW_NSEC_PER_MSEC) + 1;
        }
        int n = poll(p, sfd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (deadline && sw_now_monotonic_ns() >= deadline) {
            rt_task_signal(t, SIGKILL);
            deadline = 0;
        }
        if (n > 0 && sfd >= 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGINT || sig == SIGTERM) {
                    if (++stops > 1)
                        sig = SIGKILL;
                    else
                        deadline = sw_now_monotonic_ns() + STOP_GRACE_MS * SW_NSEC_PER_MSEC;
                }
                rt_task_signal(t, sig);
            }
        }
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP))) {
            int r = rt_task_reap(t, ex);
            if (r != -EAGAIN) {
                if (sfd >= 0)
                    close(sfd);
                return r;
            }
        }
    }
    if (sfd >= 0)
        close(sfd);
    return -errno;
}

int swarmd_run_task(int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, OPT_USER},
        {"read-only", no_argument, NULL, OPT_READ_ONLY},
        {"limit-memory", required_argument, NULL, OPT_LIMIT_MEMORY},
        {"limit-cpu", required_argument, NULL, OPT_LIMIT_CPU},
        {"limit-pids", required_argument, NULL, OPT_LIMIT_PIDS},
        {"cap-add", required_argument, NULL, OPT_CAP_ADD},
        {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
        {"hostname", required_argument, NULL, OPT_HOSTNAME},
        {"env", required_argument, NULL, 'e'},
        {"workdir", required_argument, NULL, 'w'},
        {"secret-file", required_argument, NULL, OPT_SECRET},
        {"rootfs", required_argument, NULL, OPT_ROOTFS},
        {"network", required_argument, NULL, OPT_NETWORK},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"privileged", no_argument, NULL, OPT_PRIVILEGED},
        {"userns", no_argument, NULL, OPT_USERNS},
        {"id", required_argument, NULL, OPT_ID},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct rt_task_spec spec = {.network = RT_NET_NONE, .stdio = {0, 1, 2}};
    const char *user = NULL, *seccomp = "default";
    char *env[MAX_LIST + 1] = {0};
    size_t n_env = 0, n_secrets = 0;
    struct secret_arg secrets[MAX_LIST];
    uint64_t adds = 0, drops = 0;
    bool add_all = false, drop_all = false;
    char id[SW_ID_LEN + 1];
    char err[512] = "";
    rt_runtime *rt = NULL;
    rt_seccomp *custom = NULL;
    rt_task *t = NULL;
    int c, r, code = 125;

    memset(secrets, 0, sizeof(secrets));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:e:w:h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_USER:
                user = optarg;
                break;
            case OPT_READ_ONLY:
                spec.read_only = true;
                break;
            case OPT_LIMIT_MEMORY:
                if (parse_size(optarg, &spec.memory_limit) < 0)
                    return usage_error("invalid --limit-memory '%s': a size such as 64M", optarg);
                break;
            case OPT_LIMIT_CPU:
                if (parse_cpus(optarg, &spec.nano_cpus) < 0)
                    return usage_error("invalid --limit-cpu '%s': a number of CPUs such as 0.5",
                                       optarg);
                break;
            case OPT_LIMIT_PIDS: {
                uint32_t v;
                if (parse_u32(optarg, &v, 10) < 0 || v == 0)
                    return usage_error("invalid --limit-pids '%s': a positive number", optarg);
                spec.pids_limit = v;
                break;
            }
            case OPT_CAP_ADD:
            case OPT_CAP_DROP:
                if ((r = apply_cap(optarg, c == OPT_CAP_ADD, &adds, &drops, &add_all, &drop_all)))
                    return r;
                break;
            case OPT_HOSTNAME:
                if (!*optarg || strlen(optarg) > 64)
                    return usage_error("invalid --hostname '%s': 1-64 characters", optarg);
                spec.hostname = optarg;
                break;
            case 'e':
                if (!strchr(optarg, '=') || optarg[0] == '=')
                    return usage_error("invalid --env '%s': expected KEY=VALUE", optarg);
                if (n_env == MAX_LIST)
                    return usage_error("at most %d --env", MAX_LIST);
                env[n_env++] = optarg;
                break;
            case 'w':
                if (optarg[0] != '/')
                    return usage_error("invalid --workdir '%s': an absolute path", optarg);
                spec.workdir = optarg;
                break;
            case OPT_SECRET:
                if (n_secrets == MAX_LIST)
                    return usage_error("at most %d --secret-file", MAX_LIST);
                if ((r = parse_secret(optarg, &secrets[n_secrets]))) {
                    code = r;
                    goto out;
                }
                n_secrets++;
                break;
            case OPT_ROOTFS:
                if (optarg[0] != '/')
                    return usage_error("invalid --rootfs '%s': an absolute path", optarg);
                spec.rootfs = optarg;
                break;
            case OPT_NETWORK:
                if (!strcmp(optarg, "none"))
                    spec.network = RT_NET_NONE;
                else if (!strcmp(optarg, "host"))
                    spec.network = RT_NET_HOST;
                else
                    return usage_error("invalid --network '%s': none or host", optarg);
                break;
            case OPT_SECCOMP:
                seccomp = optarg;
                break;
            case OPT_PRIVILEGED:
                spec.privileged = true;
                break;
            case OPT_USERNS:
                spec.userns = true;
                break;
            case OPT_ID:
                spec.id = optarg;
                break;
            case 'h':
                fputs(usage, stdout);
                return 0;
            case ':':
                return usage_error("option '%s' needs a value", argv[optind - 1]);
            default:
                return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        code = usage_error("a command is required: swarmd run-task [OPTIONS] -- COMMAND [ARG...]");
        goto out;
    }
    if (user && (r = parse_user(user, spec.rootfs, &spec.uid, &spec.gid))) {
        code = r;
        goto out;
    }
    spec.user_set = user != NULL;
    uint64_t caps = drop_all ? 0 : RT_CAPS_DEFAULT;
    if (add_all) /* every capability swarmd itself holds, as --privileged */
        caps = rt_caps_all() & rt_caps_held();
    spec.caps = (caps | adds) & ~drops & rt_caps_all();
    spec.env = env;
    spec.argv = argv + optind;
    if (!spec.id) {
        if (sw_id_generate(id) < 0)
            return 1;
        spec.id = id;
    }

    struct rt_config cfg = {0};
    if (rt_runtime_create(&cfg, &rt, err, sizeof(err)) < 0) {
        fprintf(stderr, "swarmd run-task: %s\n", err);
        code = 125;
        goto out;
    }
    if (!strcmp(seccomp, "default")) {
        spec.seccomp_choice = RT_SECCOMP_DEFAULT;
    } else if (!strcmp(seccomp, "unconfined")) {
        spec.seccomp_choice = RT_SECCOMP_UNCONFINED;
    } else {
        _cleanup_free_ char *json = NULL;
        size_t len;
        r = sw_read_file(seccomp, 1 << 20, &json, &len);
        if (r < 0) {
            fprintf(stderr, "swarmd run-task: seccomp profile %s: %s\n", seccomp,
                    r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
            goto out;
        }
        if (rt_seccomp_from_json(json, len, spec.caps, &custom, err, sizeof(err)) < 0) {
            fprintf(stderr, "swarmd run-task: seccomp profile %s: %s\n", seccomp, err);
            goto out;
        }
        spec.seccomp_choice = RT_SECCOMP_CUSTOM;
        spec.seccomp = custom;
    }
    struct rt_secret rs[MAX_LIST];
    for (size_t i = 0; i < n_secrets; i++)
        rs[i] = (struct rt_secret){.name = secrets[i].name,
                                   .data = secrets[i].data.data,
                                   .len = secrets[i].data.len,
                                   .mode = secrets[i].mode,
                                   .uid = secrets[i].uid,
                                   .gid = secrets[i].gid};
    spec.secrets = rs;
    spec.n_secrets = n_secrets;

    /* signals for the task are read from a signalfd while it runs */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigprocmask(SIG_BLOCK, &set, &old);
    r = rt_task_start(rt, &spec, &t, err, sizeof(err));
    /* the task holds its own copy now (on its tmpfs) */
    for (size_t i = 0; i < n_secrets; i++)
        sw_secret_finish(&secrets[i].data);
    if (r < 0) {
        fprintf(stderr, "swarmd run-task: %s\n", err);
        sigprocmask(SIG_SETMASK, &old, NULL);
        /* docker run's codes: 127 command not found, 126 not executable, 125 otherwise */
        bool exec_step = strncmp(err, "exec ", 5) == 0;
        code = exec_step && (r == -ENOENT || r == -ENOTDIR) ? 127 : exec_step ? 126 : 125;
        goto out;
    }
    struct rt_exit ex = {0};
    r = wait_task(t, &ex);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        fprintf(stderr, "swarmd run-task: waiting for the task: %s\n", strerror(-r));
        goto out;
    }
    if (ex.oom)
        fprintf(stderr,
                "swarmd run-task: the task was killed by the OOM killer (memory limit %" PRId64
                " bytes)\n",
                spec.memory_limit);
    code = ex.exit_code;
out:
    if (t)
        rt_task_cleanup(t);
    rt_seccomp_free(custom);
    rt_runtime_free(rt);
    for (size_t i = 0; i < n_secrets; i++)
        sw_secret_finish(&secrets[i].data);
    return code;
}
