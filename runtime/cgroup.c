/* Task cgroups on v1, v2 and the hybrid layout: detection, parent, limits, attach, OOM, removal. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/internal.h"

#define CPU_PERIOD_US 100000
#define CPU_QUOTA_MIN_US 1000 /* the kernel's minimum quota */
#define DESTROY_TIMEOUT_NS (2LL * 1000 * 1000 * 1000)
#define CONTROL_FILE_MAX (1 << 20)

enum { C_MEMORY, C_CPU, C_PIDS, C_N };
static const char *const controller_names[C_N] = {"memory", "cpu", "pids"};

static int fail(char *errmsg, size_t errmsg_size, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *errmsg, size_t errmsg_size, int r, const char *fmt, ...)
{
    if (errmsg && errmsg_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, errmsg_size, fmt, ap);
        va_end(ap);
    }
    return r;
}

static int fmt_checked(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fmt_checked(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= size)
        return -ENAMETOOLONG;
    return 0;
}

/* dir + rel, where rel is "/" (nothing), "/x/y" or "x/y". */
static int path_join(char *buf, size_t size, const char *dir, const char *rel)
{
    while (*rel == '/')
        rel++;
    if (!*rel)
        return fmt_checked(buf, size, "%s", dir);
    return fmt_checked(buf, size, "%s/%s", dir, rel);
}

static bool valid_component(const char *s, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* "a" or "a/b/c", each component valid. */
static bool valid_parent(const char *p)
{
    if (!p || !*p)
        return false;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!valid_component(p, len))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

/* An absolute cgroup path with no "." or ".." component and no empty component. */
static bool clean_abs_path(const char *p)
{
    if (p[0] != '/')
        return false;
    if (p[1] == '\0')
        return true;
    p++;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static int read_all(const char *path, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (cap - len < 2) {
            if (cap >= CONTROL_FILE_MAX)
                return -EFBIG;
            char *n = realloc(buf, cap * 2);
            if (!n)
                return -ENOMEM;
            buf = n;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    if (ret_len)
        *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}

static int write_at(const char *dir, const char *file, const char *value, char *errmsg,
                    size_t errmsg_size)
{
    char path[RT_CGROUP_PATH_MAX];
    int r = path_join(path, sizeof(path), dir, file);
    if (r < 0)
        return fail(errmsg, errmsg_size, r, "cgroup: path too long: %s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return fail(errmsg, errmsg_size, -errno, "cgroup: write %s: %s", path, strerror(errno));
    size_t len = strlen(value);
    ssize_t k;
    do
        k = write(fd, value, len);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return fail(errmsg, errmsg_size, -errno, "cgroup: write %s: %s", path, strerror(errno));
    if ((size_t)k != len)
        return fail(errmsg, errmsg_size, -EIO, "cgroup: write %s: short write", path);
    return 0;
}

static int write_int_at(const char *dir, const char *file, int64_t v, char *errmsg,
                        size_t errmsg_size)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return write_at(dir, file, buf, errmsg, errmsg_size);
}

static int read_at(const char *dir, const char *file, char **ret)
{
    char path[RT_CGROUP_PATH_MAX];
    int r = path_join(path, sizeof(path), dir, file);
    if (r < 0)
        return r;
    return read_all(path, ret, NULL);
}

static bool exists_at(const char *dir, const char *file)
{
    char path[RT_CGROUP_PATH_MAX];
    struct stat st;
    if (path_join(path, sizeof(path), dir, file) < 0)
        return false;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* mkdir that accepts an existing directory (never a symlink). */
static int mkdir_one(const char *path, char *errmsg, size_t errmsg_size)
{
    if (mkdir(path, 0755) == 0)
        return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (e == EEXIST)
        e = ENOTDIR;
    return fail(errmsg, errmsg_size, -e, "cgroup: mkdir %s: %s", path, strerror(e));
}

/* A task's cgroup: a leftover directory (a crash before removal) is reused when empty; one
 * holding processes belongs to a live task and is refused, never adopted nor destroyed. */
static int mkdir_leaf(const char *path, char *errmsg, size_t errmsg_size)
{
    if (mkdir(path, 0755) == 0)
        return 0;
    if (errno != EEXIST)
        return fail(errmsg, errmsg_size, -errno, "cgroup: mkdir %s: %s", path, strerror(errno));
    int r = mkdir_one(path, errmsg, errmsg_size);
    if (r < 0)
        return r;
    _cleanup_free_ char *procs = NULL;
    if (read_at(path, "cgroup.procs", &procs) == 0 && procs[strcspn(procs, "0123456789")])
        return fail(errmsg, errmsg_size, -EEXIST,
                    "cgroup: %s already exists and holds processes (a task with this id is "
                    "running)",
                    path);
    return 0;
}

/* Is word one of the whitespace- or comma-separated tokens of list? */
static bool has_token(const char *list, const char *word, const char *seps)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p) {
        size_t skip = strspn(p, seps);
        p += skip;
        size_t len = strcspn(p, seps);
        if (len == wl && memcmp(p, word, wl) == 0)
            return true;
        p += len;
    }
    return false;
}

/* ------------------------------------------------------------------ detection */

struct mount_scan {
    bool v2_at_root;
    char v2_other[RT_CGROUP_PATH_MAX]; /* cgroup2 below root (hybrid "unified") */
    char v2_root[RT_CGROUP_PATH_MAX];  /* field 4 of the cgroup2 mount */
    char v1[C_N][RT_CGROUP_PATH_MAX];
    char v1_root[C_N][RT_CGROUP_PATH_MAX];
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (char *p = s; *p;) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *w++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 4;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
}

static int scan_mountinfo(const char *mountinfo, const char *root, struct mount_scan *s,
                          char *errmsg, size_t errmsg_size)
{
    _cleanup_fclose_ FILE *f = fopen(mountinfo, "re");
    if (!f)
        return fail(errmsg, errmsg_size, -errno, "cgroup: open %s: %s", mountinfo, strerror(errno));
    size_t rootlen = strlen(root);
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        /* id parent maj:min root mountpoint options [optional...] - fstype source superopts */
        char *fields[6] = {0};
        int nf = 0;
        char *save = NULL;
        char *tok = strtok_r(line, " ", &save);
        for (; tok && nf < 6; nf++) {
            fields[nf] = tok;
            tok = strtok_r(NULL, " ", &save);
        }
        if (nf < 6)
            continue;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        if (!tok)
            continue;
        char *fstype = strtok_r(NULL, " ", &save);
        char *source = strtok_r(NULL, " ", &save);
        char *superopts = strtok_r(NULL, " ", &save);
        if (!fstype || !source)
            continue;
        char *mroot = fields[3], *mpoint = fields[4];
        unescape_octal(mroot);
        unescape_octal(mpoint);
        bool at_root = strcmp(mpoint, root) == 0;
        bool below = strncmp(mpoint, root, rootlen) == 0 && mpoint[rootlen] == '/';
        if (!at_root && !below)
            continue;
        if (strcmp(fstype, "cgroup2") == 0) {
            if (strlen(mroot) >= sizeof(s->v2_root))
                continue;
            snprintf(s->v2_root, sizeof(s->v2_root), "%s", mroot);
            if (at_root) {
                s->v2_at_root = true;
            } else if (strlen(mpoint) < sizeof(s->v2_other)) {
                snprintf(s->v2_other, sizeof(s->v2_other), "%s", mpoint);
            }
        } else if (strcmp(fstype, "cgroup") == 0 && superopts) {
            for (int c = 0; c < C_N; c++) {
                if (!has_token(superopts, controller_names[c], ","))
                    continue;
                if (strlen(mpoint) >= sizeof(s->v1[c]) || strlen(mroot) >= sizeof(s->v1_root[c]))
                    continue;
                snprintf(s->v1[c], sizeof(s->v1[c]), "%s", mpoint);
                snprintf(s->v1_root[c], sizeof(s->v1_root[c]), "%s", mroot);
            }
        }
    }
    return 0;
}

/* The process's cgroup path as seen from the mount: strip the mount's root. */
static int relative_to_mount(const char *self, const char *mroot, char *out, size_t size)
{
    if (!clean_abs_path(self))
        return -EXDEV;
    if (!mroot[0] || strcmp(mroot, "/") == 0)
        return fmt_checked(out, size, "%s", self);
    size_t ml = strlen(mroot);
    if (strncmp(self, mroot, ml) != 0 || (self[ml] != '\0' && self[ml] != '/'))
        return -EXDEV;
    return fmt_checked(out, size, "%s", self[ml] ? self + ml : "/");
}

static int read_self(const char *proc_self_cgroup, char v2[RT_CGROUP_PATH_MAX],
                     char v1[C_N][RT_CGROUP_PATH_MAX], char *errmsg, size_t errmsg_size)
{
    _cleanup_fclose_ FILE *f = fopen(proc_self_cgroup, "re");
    if (!f)
        return fail(errmsg, errmsg_size, -errno, "cgroup: open %s: %s", proc_self_cgroup,
                    strerror(errno));
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctrls = c1 + 1, *path = c2 + 1;
        if (strlen(path) >= RT_CGROUP_PATH_MAX)
            return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: %s: path too long",
                        proc_self_cgroup);
        if (strcmp(line, "0") == 0 && !*ctrls) {
            snprintf(v2, RT_CGROUP_PATH_MAX, "%s", path);
            continue;
        }
        for (int c = 0; c < C_N; c++)
            if (has_token(ctrls, controller_names[c], ","))
                snprintf(v1[c], RT_CGROUP_PATH_MAX, "%s", path);
    }
    return 0;
}

static int check_v2_controllers(const struct rt_cgroup_layout *l, char *errmsg, size_t errmsg_size)
{
    char dir[RT_CGROUP_PATH_MAX];
    if (path_join(dir, sizeof(dir), l->v2_mount, l->self_v2) < 0)
        return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s%s", l->v2_mount,
                    l->self_v2);
    _cleanup_free_ char *ctrls = NULL;
    int r = read_at(dir, "cgroup.controllers", &ctrls);
    if (r < 0)
        return fail(errmsg, errmsg_size, r, "cgroup: read %s/cgroup.controllers: %s", dir,
                    strerror(-r));
    ctrls[strcspn(ctrls, "\n")] = '\0';
    for (int c = 0; c < C_N; c++)
        if (!has_token(ctrls, controller_names[c], " \t"))
            return fail(errmsg, errmsg_size, -ENOTSUP,
                        "cgroup v2: the %s controller is not available in %s "
                        "(cgroup.controllers: \"%s\"); it is bound to a v1 hierarchy or not "
                        "delegated to this cgroup",
                        controller_names[c], dir, ctrls);
    return 0;
}

int rt__cgroup_detect(const char *root, enum rt_cgroup_mode mode, const char *proc_self_cgroup,
                      const char *mountinfo, struct rt_cgroup_layout *ret, char *errmsg,
                      size_t errmsg_size)
{
    if (!root)
        root = "/sys/fs/cgroup";
    if (!proc_self_cgroup)
        proc_self_cgroup = "/proc/self/cgroup";
    if (!mountinfo)
        mountinfo = "/proc/self/mountinfo";
    _cleanup_free_ struct rt_cgroup_layout *l = calloc(1, sizeof(*l));
    _cleanup_free_ struct mount_scan *s = calloc(1, sizeof(*s));
    if (!l || !s)
        return -ENOMEM;
    if (fmt_checked(l->root, sizeof(l->root), "%s", root) < 0)
        return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: root too long: %s", root);
    size_t rl = strlen(l->root);
    while (rl > 1 && l->root[rl - 1] == '/')
        l->root[--rl] = '\0';

    int r = scan_mountinfo(mountinfo, l->root, s, errmsg, errmsg_size);
    if (r < 0)
        return r;
    bool any_v1 = s->v1[C_MEMORY][0] || s->v1[C_CPU][0] || s->v1[C_PIDS][0];
    if (mode == RT_CGROUP_AUTO) {
        if (s->v2_at_root)
            mode = RT_CGROUP_V2;
        else if (any_v1)
            mode = RT_CGROUP_V1;
        else
            return fail(errmsg, errmsg_size, -ENOENT,
                        "cgroup: no cgroup v2 mount at %s and no v1 memory, cpu or pids "
                        "controller mounted under it",
                        l->root);
    }
    l->mode = mode;

    char self_v2[RT_CGROUP_PATH_MAX] = "";
    char self_v1[C_N][RT_CGROUP_PATH_MAX] = {{0}};
    r = read_self(proc_self_cgroup, self_v2, self_v1, errmsg, errmsg_size);
    if (r < 0)
        return r;

    if (mode == RT_CGROUP_V2) {
        /* a forced V2 on the hybrid layout uses the unified mount below root */
        const char *mount = s->v2_at_root ? l->root : s->v2_other;
        if (!mount[0])
            return fail(errmsg, errmsg_size, -ENOENT, "cgroup v2: no cgroup2 mount at %s", l->root);
        snprintf(l->v2_mount, sizeof(l->v2_mount), "%s", mount);
        if (!self_v2[0])
            return fail(errmsg, errmsg_size, -ENOENT, "cgroup v2: no \"0::\" line in %s",
                        proc_self_cgroup);
        r = relative_to_mount(self_v2, s->v2_root, l->self_v2, sizeof(l->self_v2));
        if (r < 0)
            return fail(errmsg, errmsg_size, r,
                        "cgroup v2: this process's cgroup %s is not visible in %s", self_v2, mount);
        /* after prepare_parent moved us into the daemon leaf, our cgroup is its parent */
        char *slash = strrchr(l->self_v2, '/');
        if (slash && strcmp(slash + 1, RT_CGROUP_DAEMON_LEAF) == 0)
            *(slash == l->self_v2 ? slash + 1 : slash) = '\0';
        r = check_v2_controllers(l, errmsg, errmsg_size);
        if (r < 0)
            return r;
    } else if (mode == RT_CGROUP_V1) {
        char *mounts[C_N] = {l->v1_memory, l->v1_cpu, l->v1_pids};
        char *selfs[C_N] = {l->self_memory, l->self_cpu, l->self_pids};
        for (int c = 0; c < C_N; c++) {
            if (!s->v1[c][0])
                return fail(errmsg, errmsg_size, -ENOTSUP,
                            "cgroup v1: no %s controller mounted under %s", controller_names[c],
                            l->root);
            snprintf(mounts[c], RT_CGROUP_PATH_MAX, "%s", s->v1[c]);
            if (!self_v1[c][0])
                return fail(errmsg, errmsg_size, -ENOENT, "cgroup v1: no %s line in %s",
                            controller_names[c], proc_self_cgroup);
            r = relative_to_mount(self_v1[c], s->v1_root[c], selfs[c], RT_CGROUP_PATH_MAX);
            if (r < 0)
                return fail(errmsg, errmsg_size, r,
                            "cgroup v1: this process's %s cgroup %s is not visible in %s",
                            controller_names[c], self_v1[c], s->v1[c]);
        }
    } else {
        return fail(errmsg, errmsg_size, -EINVAL, "cgroup: unknown mode %d", (int)mode);
    }
    *ret = *l;
    return 0;
}

/* ------------------------------------------------------------------ parent */

/* Enable in dir's subtree_control those of want not yet there. */
static int enable_controllers(const char *dir, const bool want[C_N], char *errmsg,
                              size_t errmsg_size)
{
    _cleanup_free_ char *cur = NULL;
    if (read_at(dir, "cgroup.subtree_control", &cur) < 0)
        cur = NULL;
    char buf[64] = "";
    size_t used = 0;
    for (int c = 0; c < C_N; c++) {
        if (!want[c] || (cur && has_token(cur, controller_names[c], " \t\n")))
            continue;
        int n =
            snprintf(buf + used, sizeof(buf) - used, "%s+%s", used ? " " : "", controller_names[c]);
        if (n < 0 || (size_t)n >= sizeof(buf) - used)
            return -ENAMETOOLONG;
        used += (size_t)n;
    }
    if (!used)
        return 0;
    return write_at(dir, "cgroup.subtree_control", buf, errmsg, errmsg_size);
}

/* The "no internal processes" rule: a non-root v2 cgroup holding processes cannot pass
 * controllers down. When the only process in it is us, move into the leaf
 * <dir>/RT_CGROUP_DAEMON_LEAF (as a systemd service with Delegate=yes is expected to do);
 * other processes are not ours to move. */
static int move_self_to_leaf(const char *dir, char *errmsg, size_t errmsg_size)
{
    _cleanup_free_ char *procs = NULL;
    int r = read_at(dir, "cgroup.procs", &procs);
    if (r < 0)
        return fail(errmsg, errmsg_size, r, "cgroup: read %s/cgroup.procs: %s", dir, strerror(-r));
    pid_t me = getpid();
    for (char *p = procs, *end; *p; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid != me)
            return fail(errmsg, errmsg_size, -EBUSY,
                        "cgroup v2: %s holds other processes besides this one (pid %ld), so it "
                        "cannot enable controllers for the tasks; run swarmd in a cgroup of its "
                        "own (Delegate=yes in its systemd unit, or: systemd-run --scope -p "
                        "Delegate=yes swarmd ...)",
                        dir, pid);
    }
    char leaf[RT_CGROUP_PATH_MAX];
    if (path_join(leaf, sizeof(leaf), dir, RT_CGROUP_DAEMON_LEAF) < 0)
        return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s", dir);
    r = mkdir_one(leaf, errmsg, errmsg_size);
    if (r < 0)
        return r;
    char pid[24];
    snprintf(pid, sizeof(pid), "%d", (int)me);
    return write_at(leaf, "cgroup.procs", pid, errmsg, errmsg_size);
}

/* mkdir -p base/parent; on v2 (want != NULL) also enable want at every new level. */
static int mkdir_parents(const char *base, const char *parent, const bool *want, char *errmsg,
                         size_t errmsg_size)
{
    char dir[RT_CGROUP_PATH_MAX];
    if (fmt_checked(dir, sizeof(dir), "%s", base) < 0)
        return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s", base);
    for (const char *p = parent;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        size_t dl = strlen(dir);
        if (dl + 1 + len >= sizeof(dir))
            return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s/%s", base,
                        parent);
        dir[dl] = '/';
        memcpy(dir + dl + 1, p, len);
        dir[dl + 1 + len] = '\0';
        int r = mkdir_one(dir, errmsg, errmsg_size);
        if (r >= 0 && want)
            r = enable_controllers(dir, want, errmsg, errmsg_size);
        if (r < 0)
            return r;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

static int prepare_v2(const struct rt_cgroup_layout *l, const char *parent, char *errmsg,
                      size_t errmsg_size)
{
    char dir[RT_CGROUP_PATH_MAX];
    if (path_join(dir, sizeof(dir), l->v2_mount, l->self_v2) < 0)
        return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s%s", l->v2_mount,
                    l->self_v2);
    bool want[C_N] = {false};
    _cleanup_free_ char *ctrls = NULL;
    if (read_at(dir, "cgroup.controllers", &ctrls) == 0)
        for (int c = 0; c < C_N; c++)
            want[c] = has_token(ctrls, controller_names[c], " \t\n");
    int r = enable_controllers(dir, want, errmsg, errmsg_size);
    if (r == -EBUSY && strcmp(l->self_v2, "/") != 0) {
        r = move_self_to_leaf(dir, errmsg, errmsg_size);
        if (r < 0)
            return r;
        r = enable_controllers(dir, want, errmsg, errmsg_size);
    }
    if (r < 0)
        return r;
    return mkdir_parents(dir, parent, want, errmsg, errmsg_size);
}

static void v1_bases(const struct rt_cgroup_layout *l, const char *mounts[C_N],
                     const char *selfs[C_N])
{
    mounts[C_MEMORY] = l->v1_memory;
    mounts[C_CPU] = l->v1_cpu;
    mounts[C_PIDS] = l->v1_pids;
    selfs[C_MEMORY] = l->self_memory;
    selfs[C_CPU] = l->self_cpu;
    selfs[C_PIDS] = l->self_pids;
}

int rt__cgroup_prepare_parent(const struct rt_cgroup_layout *l, const char *parent, char *errmsg,
                              size_t errmsg_size)
{
    if (!valid_parent(parent))
        return fail(errmsg, errmsg_size, -EINVAL,
                    "cgroup: invalid parent name \"%s\" ([A-Za-z0-9_.-] components)",
                    parent ? parent : "");
    if (l->mode == RT_CGROUP_V2)
        return prepare_v2(l, parent, errmsg, errmsg_size);
    if (l->mode != RT_CGROUP_V1)
        return fail(errmsg, errmsg_size, -EINVAL, "cgroup: layout not detected");
    const char *mounts[C_N], *selfs[C_N];
    v1_bases(l, mounts, selfs);
    for (int c = 0; c < C_N; c++) {
        char base[RT_CGROUP_PATH_MAX];
        if (path_join(base, sizeof(base), mounts[c], selfs[c]) < 0)
            return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s%s",
                        mounts[c], selfs[c]);
        int r = mkdir_parents(base, parent, NULL, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    return 0;
}

int rt__cgroup_release_parent(const struct rt_cgroup_layout *l, const char *parent)
{
    if (!valid_parent(parent))
        return -EINVAL;
    const char *mounts[C_N], *selfs[C_N];
    int n = 0;
    if (l->mode == RT_CGROUP_V2) {
        mounts[0] = l->v2_mount;
        selfs[0] = l->self_v2;
        n = 1;
    } else if (l->mode == RT_CGROUP_V1) {
        v1_bases(l, mounts, selfs);
        n = C_N;
    }
    int ret = 0;
    for (int c = 0; c < n; c++) {
        char dir[RT_CGROUP_PATH_MAX], rel[RT_CGROUP_PATH_MAX];
        if (fmt_checked(rel, sizeof(rel), "%s/%s", selfs[c], parent) < 0 ||
            path_join(dir, sizeof(dir), mounts[c], rel) < 0)
            return -ENAMETOOLONG;
        /* innermost first; stop at the first one still in use */
        for (size_t keep = strlen(dir) - strlen(parent); strlen(dir) > keep;) {
            if (rmdir(dir) < 0 && errno != ENOENT) {
                if (ret == 0)
                    ret = -errno;
                break;
            }
            char *slash = strrchr(dir, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
    }
    return ret;
}

/* ------------------------------------------------------------------ task cgroups */

void rt__cgroup_init(struct rt_cgroup *cg)
{
    memset(cg, 0, sizeof(*cg));
    cg->v2_fd = -1;
}

static int leaf_path(char *buf, const char *mount, const char *self, const char *parent,
                     const char *name, char *errmsg, size_t errmsg_size)
{
    char rel[RT_CGROUP_PATH_MAX];
    if (fmt_checked(rel, sizeof(rel), "%s/%s/%s", self, parent, name) < 0 ||
        path_join(buf, RT_CGROUP_PATH_MAX, mount, rel) < 0)
        return fail(errmsg, errmsg_size, -ENAMETOOLONG, "cgroup: path too long: %s%s/%s/%s", mount,
                    self, parent, name);
    return 0;
}

static int limits_v1(const struct rt_cgroup *cg, const struct rt_cgroup_limits *lim, char *errmsg,
                     size_t errmsg_size)
{
    int r;
    if (lim->memory_bytes > 0) {
        r = write_int_at(cg->memory, "memory.limit_in_bytes", lim->memory_bytes, errmsg,
                         errmsg_size);
        if (r < 0)
            return r;
        /* memory+swap: without it the task swaps past its limit */
        if (exists_at(cg->memory, "memory.memsw.limit_in_bytes")) {
            r = write_int_at(cg->memory, "memory.memsw.limit_in_bytes", lim->memory_bytes, errmsg,
                             errmsg_size);
            if (r < 0)
                return r;
        }
    }
    if (lim->nano_cpus > 0) {
        int64_t quota = SW_MAX(lim->nano_cpus / (1000000000LL / CPU_PERIOD_US), CPU_QUOTA_MIN_US);
        r = write_int_at(cg->cpu, "cpu.cfs_period_us", CPU_PERIOD_US, errmsg, errmsg_size);
        if (r < 0)
            return r;
        r = write_int_at(cg->cpu, "cpu.cfs_quota_us", quota, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    if (lim->pids > 0) {
        r = write_int_at(cg->pids, "pids.max", lim->pids, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    return 0;
}

static int limits_v2(const struct rt_cgroup *cg, const struct rt_cgroup_limits *lim, char *errmsg,
                     size_t errmsg_size)
{
    int r;
    if (lim->memory_bytes > 0) {
        r = write_int_at(cg->v2, "memory.max", lim->memory_bytes, errmsg, errmsg_size);
        if (r < 0)
            return r;
        if (exists_at(cg->v2, "memory.swap.max")) {
            r = write_at(cg->v2, "memory.swap.max", "0", errmsg, errmsg_size);
            if (r < 0)
                return r;
        }
    }
    if (lim->nano_cpus > 0) {
        int64_t quota = SW_MAX(lim->nano_cpus / (1000000000LL / CPU_PERIOD_US), CPU_QUOTA_MIN_US);
        char buf[64];
        snprintf(buf, sizeof(buf), "%" PRId64 " %d", quota, CPU_PERIOD_US);
        r = write_at(cg->v2, "cpu.max", buf, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    if (lim->pids > 0) {
        r = write_int_at(cg->v2, "pids.max", lim->pids, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    return 0;
}

int rt__cgroup_create(const struct rt_cgroup_layout *l, const char *parent, const char *name,
                      const struct rt_cgroup_limits *lim, struct rt_cgroup *ret, char *errmsg,
                      size_t errmsg_size)
{
    static const struct rt_cgroup_limits none = {0};
    if (!lim)
        lim = &none;
    if (!valid_parent(parent))
        return fail(errmsg, errmsg_size, -EINVAL, "cgroup: invalid parent name \"%s\"",
                    parent ? parent : "");
    if (!name || !valid_component(name, strlen(name)))
        return fail(errmsg, errmsg_size, -EINVAL, "cgroup: invalid task cgroup name \"%s\"",
                    name ? name : "");
    if (lim->memory_bytes < 0 || lim->nano_cpus < 0 || lim->pids < 0)
        return fail(errmsg, errmsg_size, -EINVAL, "cgroup: negative limit");

    _cleanup_free_ struct rt_cgroup *cg = malloc(sizeof(*cg));
    if (!cg)
        return -ENOMEM;
    rt__cgroup_init(cg);
    int r;
    if (l->mode == RT_CGROUP_V2) {
        cg->mode = RT_CGROUP_V2;
        r = leaf_path(cg->v2, l->v2_mount, l->self_v2, parent, name, errmsg, errmsg_size);
        if (r < 0)
            return r;
        r = mkdir_leaf(cg->v2, errmsg, errmsg_size);
        if (r < 0) {
            cg->v2[0] = '\0';
            return r;
        }
        r = limits_v2(cg, lim, errmsg, errmsg_size);
        if (r >= 0) {
            cg->v2_fd = open(cg->v2, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            if (cg->v2_fd < 0)
                r = fail(errmsg, errmsg_size, -errno, "cgroup: open %s: %s", cg->v2,
                         strerror(errno));
        }
    } else if (l->mode == RT_CGROUP_V1) {
        cg->mode = RT_CGROUP_V1;
        const char *mounts[C_N], *selfs[C_N];
        char *dirs[C_N] = {cg->memory, cg->cpu, cg->pids};
        v1_bases(l, mounts, selfs);
        r = 0;
        for (int c = 0; c < C_N && r >= 0; c++) {
            char path[RT_CGROUP_PATH_MAX];
            r = leaf_path(path, mounts[c], selfs[c], parent, name, errmsg, errmsg_size);
            if (r >= 0)
                r = mkdir_leaf(path, errmsg, errmsg_size);
            if (r >= 0)
                memcpy(dirs[c], path, sizeof(path));
        }
        if (r >= 0)
            r = limits_v1(cg, lim, errmsg, errmsg_size);
    } else {
        return fail(errmsg, errmsg_size, -EINVAL, "cgroup: layout not detected");
    }
    if (r < 0) {
        rt__cgroup_destroy(cg);
        return r;
    }
    *ret = *cg;
    return 0;
}

int rt__cgroup_attach(const struct rt_cgroup *cg, pid_t pid, char *errmsg, size_t errmsg_size)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%d", (int)pid);
    const char *dirs[] = {cg->v2, cg->memory, cg->cpu, cg->pids};
    int n = 0;
    for (size_t i = 0; i < SW_ARRAY_SIZE(dirs); i++) {
        if (!dirs[i][0])
            continue;
        int r = write_at(dirs[i], "cgroup.procs", buf, errmsg, errmsg_size);
        if (r < 0)
            return r;
        n++;
    }
    if (!n)
        return fail(errmsg, errmsg_size, -ENOENT, "cgroup: attach pid %d: no cgroup", (int)pid);
    return 0;
}

/* The value of "key N" in a flat-keyed control file. */
static int read_key(const char *dir, const char *file, const char *key, int64_t *ret)
{
    _cleanup_free_ char *buf = NULL;
    int r = read_at(dir, file, &buf);
    if (r < 0)
        return r;
    size_t kl = strlen(key);
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
            char *end;
            errno = 0;
            long long v = strtoll(line + kl + 1, &end, 10);
            if (errno || end == line + kl + 1)
                return -EBADMSG;
            *ret = v;
            return 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    return -ENODATA;
}

int rt__cgroup_oom_killed(const struct rt_cgroup *cg)
{
    int64_t n = 0;
    int r;
    if (cg->mode == RT_CGROUP_V2 && cg->v2[0])
        r = read_key(cg->v2, "memory.events", "oom_kill", &n);
    else if (cg->mode == RT_CGROUP_V1 && cg->memory[0])
        r = read_key(cg->memory, "memory.oom_control", "oom_kill", &n);
    else
        r = -ENOENT;
    if (r < 0)
        return r;
    return n > 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ destroy */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_pids(const char *buf, pid_t **ret, size_t *ret_n)
{
    size_t n = 0, cap = 0;
    pid_t *v = NULL;
    for (const char *p = buf;;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        p = end;
        if (pid <= 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            pid_t *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                free(v);
                return -ENOMEM;
            }
            v = nv;
        }
        v[n++] = (pid_t)pid;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

static bool pid_listed(const pid_t *v, size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == pid)
            return true;
    return false;
}

/* SIGKILL every process listed in dir/cgroup.procs. Each pid is pinned with a pidfd and
 * signalled only if it is still listed afterwards, so a recycled pid is never hit.
 * Returns how many were listed (0: empty or no such file). */
static int kill_listed(const char *dir)
{
    _cleanup_free_ char *buf = NULL;
    if (read_at(dir, "cgroup.procs", &buf) < 0)
        return 0;
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    if (parse_pids(buf, &pids, &n) < 0 || n == 0)
        return 0;
    _cleanup_free_ int *fds = malloc(n * sizeof(int));
    if (!fds)
        return (int)SW_MIN(n, (size_t)INT32_MAX);
    for (size_t i = 0; i < n; i++)
        fds[i] = (int)syscall(SYS_pidfd_open, pids[i], 0);
    _cleanup_free_ char *again = NULL;
    _cleanup_free_ pid_t *still = NULL;
    size_t m = 0;
    if (read_at(dir, "cgroup.procs", &again) == 0)
        (void)parse_pids(again, &still, &m);
    for (size_t i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        if (still && pid_listed(still, m, pids[i]))
            (void)syscall(SYS_pidfd_send_signal, fds[i], SIGKILL, NULL, 0);
        close(fds[i]);
    }
    return (int)SW_MIN(n, (size_t)INT32_MAX);
}

/* Kill what is left in dir, then rmdir it, retrying while the kernel reaps. */
static int remove_one(char *dir, bool v2)
{
    if (!dir[0])
        return 0;
    if (!clean_abs_path(dir) || strcmp(dir, "/") == 0)
        return -EINVAL;
    struct stat st;
    if (lstat(dir, &st) < 0) {
        if (errno == ENOENT) {
            dir[0] = '\0';
            return 0;
        }
        return -errno;
    }
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (v2 && exists_at(dir, "cgroup.kill"))
        (void)write_at(dir, "cgroup.kill", "1", NULL, 0);
    int64_t deadline = now_ns() + DESTROY_TIMEOUT_NS;
    long delay_us = 200;
    for (;;) {
        kill_listed(dir);
        if (rmdir(dir) == 0 || errno == ENOENT) {
            dir[0] = '\0';
            return 0;
        }
        int e = errno;
        if (e != EBUSY || now_ns() > deadline)
            return -e;
        struct timespec ts = {0, delay_us * 1000};
        nanosleep(&ts, NULL);
        delay_us = SW_MIN(delay_us * 2, 20000L);
    }
}

int rt__cgroup_destroy(struct rt_cgroup *cg)
{
    if (!cg)
        return 0;
    int ret = 0, r;
    r = remove_one(cg->v2, true);
    if (r < 0 && ret == 0)
        ret = r;
    char *dirs[] = {cg->memory, cg->cpu, cg->pids};
    for (size_t i = 0; i < SW_ARRAY_SIZE(dirs); i++) {
        r = remove_one(dirs[i], false);
        if (r < 0 && ret == 0)
            ret = r;
    }
    if (cg->mode == RT_CGROUP_V2 && cg->v2_fd >= 0) {
        close(cg->v2_fd);
        cg->v2_fd = -1;
    }
    return ret;
}
