/* In-task probe for the privileged runtime tests: run inside a task by `swarmd run-task`,
 * each subcommand checks one isolation point from the inside and prints `ok NAME` or
 * `FAIL NAME: detail`; the exit status is 1 if anything failed. Built static, so it also
 * runs in a bare --rootfs. Subcommands are chained with "+": `probe pid1 + nnp`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

static int failures;

static void vreport(bool good, const char *name, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vreport(bool good, const char *name, const char *fmt, va_list ap)
{
    printf("%s %s", good ? "ok" : "FAIL", name);
    if (fmt) {
        fputs(": ", stdout);
        vprintf(fmt, ap);
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (!good)
        failures++;
}

void ok(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(true, name, fmt, ap);
    va_end(ap);
}

void fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(false, name, fmt, ap);
    va_end(ap);
}

/* ok or FAIL on a condition, with the same detail either way. */
void check(bool good, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(good, name, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ helpers */

/* Whole file into buf (NUL-terminated); bytes read or -errno. */
ssize_t slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* The value of "Key:\t..." in /proc/self/status, whitespace trimmed ("" if absent). */
const char *status_field(const char *key)
{
    static char buf[8192];
    static char val[128];
    val[0] = '\0';
    if (slurp("/proc/self/status", buf, sizeof(buf)) < 0)
        return val;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            const char *v = line + klen + 1;
            v += strspn(v, " \t");
            snprintf(val, sizeof(val), "%s", v);
            break;
        }
        line = next;
    }
    return val;
}

bool parse_ul(const char *s, int base, unsigned long *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, base);
    if (errno || end == s || *end)
        return false;
    *ret = v;
    return true;
}

/* A mount from /proc/self/mountinfo: the top-most one at mountpoint. */
struct mnt {
    char fstype[64];
    char opts[256];  /* per-mount options (ro, nosuid, ...) */
    char super[256]; /* superblock options */
};

static bool find_mount(const char *mountpoint, struct mnt *ret)
{
    static char buf[1 << 16];
    bool found = false;
    if (slurp("/proc/self/mountinfo", buf, sizeof(buf)) < 0)
        return false;
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        /* id parent maj:min root mountpoint opts [optional...] - fstype source super */
        char *f[6] = {0};
        char *p = line;
        for (int i = 0; i < 6 && p; i++) {
            f[i] = p;
            p = strchr(p, ' ');
            if (p)
                *p++ = '\0';
        }
        char *dash = p ? strstr(p, "- ") : NULL;
        if (f[5] && dash && strcmp(f[4], mountpoint) == 0) {
            char *fstype = dash + 2, *src = strchr(fstype, ' ');
            char *super = src ? strchr(src + 1, ' ') : NULL;
            if (src)
                *src = '\0';
            snprintf(ret->fstype, sizeof(ret->fstype), "%s", fstype);
            snprintf(ret->opts, sizeof(ret->opts), "%s", f[5]);
            snprintf(ret->super, sizeof(ret->super), "%s", super ? super + 1 : "");
            found = true; /* keep going: the last one is on top */
        }
        line = next;
    }
    return found;
}

static bool has_opt(const char *opts, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = opts; p && *p;) {
        if (strncmp(p, opt, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return false;
}

/* "ro,nosuid" all in opts? */
static bool has_opts(const char *opts, const char *want)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", want);
    for (char *p = buf, *next; p && *p; p = next) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        if (!has_opt(opts, p))
            return false;
    }
    return true;
}

const char *errname(int e)
{
    const char *s = e ? strerrorname_np(e) : "success";
    return s ? s : "?";
}

void expect_errno(const char *name, int got, int want)
{
    if (got == want)
        ok(name, "%s", errname(want));
    else
        fail(name, "expected %s, got %s", errname(want), errname(got));
}

/* ------------------------------------------------------------------ identity */

static void cmd_pid1(void)
{
    check(getpid() == 1, "pid1", "getpid %d", (int)getpid());
    check(getppid() == 0, "ppid0", "getppid %d", (int)getppid());
}

static void cmd_hostname(const char *want)
{
    char h[256] = "";
    gethostname(h, sizeof(h) - 1);
    check(strcmp(h, want) == 0, "hostname", "\"%s\" (expected \"%s\")", h, want);
}

/* Each spec: NAME=INODE (same namespace as the host) or NAME!=INODE (a new one). */
static void cmd_ns(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        char name[64], path[128], label[96];
        const char *spec = argv[i];
        const char *op = strchr(spec, '=');
        if (!op || op == spec) {
            fail("ns", "bad spec %s", spec);
            continue;
        }
        bool differ = op[-1] == '!';
        size_t n = (size_t)(op - spec) - (differ ? 1 : 0);
        snprintf(name, sizeof(name), "%.*s", (int)n, spec);
        snprintf(label, sizeof(label), "ns-%s", name);
        unsigned long want;
        if (!parse_ul(op + 1, 10, &want)) {
            fail(label, "bad inode %s", op + 1);
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/ns/%s", name);
        struct stat st;
        if (stat(path, &st) < 0) {
            fail(label, "stat %s: %m", path);
            continue;
        }
        bool same = (unsigned long)st.st_ino == want;
        check(differ ? !same : same, label, "%lu %s host's %lu", (unsigned long)st.st_ino,
              same ? "==" : "!=", want);
    }
}

static void cmd_caps(const char *eff, const char *bnd)
{
    char want_eff[32], want_bnd[32];
    /* accept "400" or "0000000000000400" */
    unsigned long e, b;
    if (!parse_ul(eff, 16, &e) || !parse_ul(bnd, 16, &b)) {
        fail("caps", "bad arguments %s %s", eff, bnd);
        return;
    }
    snprintf(want_eff, sizeof(want_eff), "%016lx", e);
    snprintf(want_bnd, sizeof(want_bnd), "%016lx", b);
    const char *got = status_field("CapEff");
    check(strcmp(got, want_eff) == 0, "CapEff", "%s (expected %s)", got, want_eff);
    got = status_field("CapPrm");
    check(strcmp(got, want_eff) == 0, "CapPrm", "%s (expected %s)", got, want_eff);
    got = status_field("CapBnd");
    check(strcmp(got, want_bnd) == 0, "CapBnd", "%s (expected %s)", got, want_bnd);
    got = status_field("CapInh");
    check(strcmp(got, "0000000000000000") == 0, "CapInh", "%s", got);
    got = status_field("CapAmb");
    check(strcmp(got, "0000000000000000") == 0, "CapAmb", "%s", got);
}

static void cmd_nnp(void)
{
    const char *v = status_field("NoNewPrivs");
    check(strcmp(v, "1") == 0, "NoNewPrivs", "%s", v);
}

static void cmd_user(const char *uid_s, const char *gid_s)
{
    unsigned long uid, gid;
    if (!parse_ul(uid_s, 10, &uid) || !parse_ul(gid_s, 10, &gid)) {
        fail("user", "bad arguments");
        return;
    }
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    check(r == uid && e == uid && s == uid, "uid", "%u/%u/%u (expected %lu)", r, e, s, uid);
    check(gr == gid && ge == gid && gs == gid, "gid", "%u/%u/%u (expected %lu)", gr, ge, gs, gid);
    int ng = getgroups(0, NULL);
    check(ng == 0, "groups", "%d supplementary groups", ng);
    if (uid != 0) {
        static const char *const keys[] = {"CapEff", "CapPrm", "CapInh", "CapAmb"};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *v = status_field(keys[i]);
            check(strcmp(v, "0000000000000000") == 0, keys[i], "%s for uid %lu", v, uid);
        }
    }
}

/* /proc/self/uid_map and gid_map are exactly one "0 BASE SIZE" line. */
static void cmd_idmap(const char *base, const char *size)
{
    static const char *const files[] = {"/proc/self/uid_map", "/proc/self/gid_map"};
    for (int i = 0; i < 2; i++) {
        char buf[512];
        if (slurp(files[i], buf, sizeof(buf)) < 0) {
            fail(files[i], "read: %m");
            continue;
        }
        unsigned long a, b, c;
        int n = sscanf(buf, "%lu %lu %lu", &a, &b, &c);
        unsigned long wb = strtoul(base, NULL, 10), ws = strtoul(size, NULL, 10);
        bool one_line = strchr(buf, '\n') == buf + strlen(buf) - 1;
        check(n == 3 && a == 0 && b == wb && c == ws && one_line, files[i], "%.*s",
              (int)strcspn(buf, "\n"), buf);
    }
}

/* ------------------------------------------------------------------ filesystem */

/* Creating a file in each dir fails with EROFS. */
static void cmd_readonly(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        char path[512], label[128];
        snprintf(path, sizeof(path), "%s/.probe-rw-%d", argv[i], (int)getpid());
        snprintf(label, sizeof(label), "readonly %s", argv[i]);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            unlink(path);
            fail(label, "created %s", path);
        } else {
            expect_errno(label, errno, EROFS);
        }
    }
}

/* A file can be created, written, read back and removed in each dir. */
static void cmd_writable(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        char path[512], label[128], buf[16];
        snprintf(path, sizeof(path), "%s/.probe-rw-%d", argv[i], (int)getpid());
        snprintf(label, sizeof(label), "writable %s", argv[i]);
        int fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            fail(label, "create %s: %m", path);
            continue;
        }
        bool good =
            write(fd, "probe", 5) == 5 && pread(fd, buf, 5, 0) == 5 && memcmp(buf, "probe", 5) == 0;
        close(fd);
        check(good && unlink(path) == 0, label, "%s", path);
    }
}

static const char *const masked_paths[] = {
    "/proc/asound",        "/proc/acpi",       "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",          "/proc/interrupts", "/sys/firmware",     "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                             "/proc/sysrq-trigger"};

/* Present masked paths: files read empty (or not at all), dirs list empty, all mounted
 * over; /proc/{bus,fs,irq,sys,sysrq-trigger} read-only. */
static void cmd_masked(void)
{
    int n_masked = 0;
    for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++) {
        const char *p = masked_paths[i];
        struct stat st;
        struct mnt m;
        if (stat(p, &st) < 0)
            continue;
        n_masked++;
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(p);
            int entries = 0;
            struct dirent *de;
            while (d && (de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                    entries++;
            if (d)
                closedir(d);
            check(entries == 0, p, "%d entries", entries);
        } else {
            char buf[4096];
            ssize_t n = slurp(p, buf, sizeof(buf));
            check(n <= 0, p, "%s", n < 0 ? errname((int)-n) : n ? "has content" : "empty");
        }
        if (!find_mount(p, &m))
            fail(p, "not a mount point");
    }
    check(n_masked > 0, "masked", "%d masked paths present", n_masked);
    for (size_t i = 0; i < sizeof(readonly_paths) / sizeof(readonly_paths[0]); i++) {
        struct statvfs sv;
        if (statvfs(readonly_paths[i], &sv) < 0)
            continue;
        check(sv.f_flag & ST_RDONLY, readonly_paths[i], "%s",
              sv.f_flag & ST_RDONLY ? "read-only" : "writable");
    }
}

/* --privileged: nothing mounted over the masked paths, /proc/sys writable. */
static void cmd_unmasked(void)
{
    for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++) {
        struct mnt m;
        if (access(masked_paths[i], F_OK) == 0)
            check(!find_mount(masked_paths[i], &m), masked_paths[i], "not masked");
    }
    struct statvfs sv;
    check(statvfs("/proc/sys", &sv) == 0 && !(sv.f_flag & ST_RDONLY), "/proc/sys", "writable");
}

/* /proc fresh with nosuid,nodev,noexec; /sys read-only; nothing of the host's root. */
static void cmd_mounts(void)
{
    struct mnt m;
    bool found = find_mount("/proc", &m);
    check(found && !strcmp(m.fstype, "proc") && has_opts(m.opts, "nosuid,nodev,noexec"), "/proc",
          "%s %s", found ? m.fstype : "missing", found ? m.opts : "");
    found = find_mount("/sys", &m);
    check(found && has_opt(m.opts, "ro"), "/sys", "%s %s", found ? m.fstype : "missing",
          found ? m.opts : "");
    found = find_mount("/", &m);
    check(found, "/", "%s %s", found ? m.fstype : "missing", found ? m.opts : "");
}

static void char_dev(const char *path, unsigned maj, unsigned min)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fail(path, "stat: %m");
        return;
    }
    check(S_ISCHR(st.st_mode) && major(st.st_rdev) == maj && minor(st.st_rdev) == min, path,
          "char %u:%u", major(st.st_rdev), minor(st.st_rdev));
}

static void cmd_dev(void)
{
    char_dev("/dev/null", 1, 3);
    char_dev("/dev/zero", 1, 5);
    char_dev("/dev/full", 1, 7);
    char_dev("/dev/random", 1, 8);
    char_dev("/dev/urandom", 1, 9);
    char_dev("/dev/tty", 5, 0);
    char buf[64];
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    bool zeros = fd >= 0 && read(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf);
    for (size_t i = 0; zeros && i < sizeof(buf); i++)
        zeros = buf[i] == 0;
    if (fd >= 0)
        close(fd);
    check(zeros, "read /dev/zero", "%s", zeros ? "zeros" : "not zeros");
    fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    expect_errno("write /dev/full", fd >= 0 && write(fd, "x", 1) < 0 ? errno : 0, ENOSPC);
    if (fd >= 0)
        close(fd);
    fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    check(fd >= 0 && write(fd, "x", 1) == 1, "write /dev/null", "accepted");
    if (fd >= 0)
        close(fd);
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    check(fd >= 0 && read(fd, buf, 16) == 16, "read /dev/urandom", "16 bytes");
    if (fd >= 0)
        close(fd);

    struct mnt m;
    bool found = find_mount("/dev/pts", &m);
    check(found && !strcmp(m.fstype, "devpts"), "/dev/pts", "%s", found ? m.fstype : "not mounted");
    fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    check(fd >= 0, "open /dev/ptmx", "%s", fd >= 0 ? "a new pty" : strerror(errno));
    if (fd >= 0) {
        int n = -1;
        bool got = ioctl(fd, TIOCGPTN, &n) == 0;
        check(got && n == 0, "pty number", "%d (a new devpts instance starts at 0)", n);
        close(fd);
    }
    struct stat st = {0};
    bool is_dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode);
    check(is_dir && (st.st_mode & 07777) == 01777, "/dev/shm", "mode %o", st.st_mode & 07777);
    found = find_mount("/dev/shm", &m);
    check(found && !strcmp(m.fstype, "tmpfs"), "/dev/shm mount", "%s",
          found ? m.fstype : "not mounted");
    found = find_mount("/dev/mqueue", &m);
    check(found && !strcmp(m.fstype, "mqueue"), "/dev/mqueue", "%s",
          found ? m.fstype : "not mounted");
}

/* The secret's content, mode and owner; /run/secrets a read-only nosuid,nodev,noexec tmpfs. */
static void cmd_secret(const char *path, const char *content, const char *mode_s, const char *uid_s,
                       const char *gid_s)
{
    char buf[4096];
    ssize_t n = slurp(path, buf, sizeof(buf));
    if (n < 0)
        fail("secret content", "read %s: %s", path, strerror((int)-n));
    else
        check((size_t)n == strlen(content) && memcmp(buf, content, (size_t)n) == 0,
              "secret content", "%zd bytes", n);
    unsigned long mode, uid, gid;
    struct stat st;
    if (!parse_ul(mode_s, 8, &mode) || !parse_ul(uid_s, 10, &uid) || !parse_ul(gid_s, 10, &gid) ||
        stat(path, &st) < 0) {
        fail("secret", "bad arguments or stat %s: %m", path);
        return;
    }
    check(S_ISREG(st.st_mode) && (st.st_mode & 07777) == mode, "secret mode", "%o (expected %lo)",
          st.st_mode & 07777, mode);
    check(st.st_uid == uid && st.st_gid == gid, "secret owner", "%u:%u (expected %lu:%lu)",
          st.st_uid, st.st_gid, uid, gid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    check(fd < 0, "secret not writable", "%s", fd < 0 ? errname(errno) : "opened");
    if (fd >= 0)
        close(fd);
    struct mnt m;
    bool found = find_mount("/run/secrets", &m);
    check(found && !strcmp(m.fstype, "tmpfs") && has_opts(m.opts, "ro,nosuid,nodev,noexec"),
          "/run/secrets mount", "%s %s", found ? m.fstype : "missing", found ? m.opts : "");
}

/* ------------------------------------------------------------------ network */

static void cmd_net(void)
{
    char buf[8192], names[512] = "";
    int count = 0;
    if (slurp("/proc/net/dev", buf, sizeof(buf)) < 0) {
        fail("net", "read /proc/net/dev: %m");
        return;
    }
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            line += strspn(line, " ");
            size_t used = strlen(names);
            snprintf(names + used, sizeof(names) - used, "%s%s", count ? "," : "", line);
            count++;
        }
        line = next;
    }
    check(strcmp(names, "lo") == 0, "interfaces", "%s (expected lo only)", names);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    memcpy(ifr.ifr_name, "lo", 3);
    bool up = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
    check(up, "lo up", "flags %#x", (unsigned)ifr.ifr_flags);
    /* a datagram to 127.0.0.1 needs lo up (ENETUNREACH otherwise) */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t w = fd >= 0 ? sendto(fd, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)) : -1;
    check(w == 1, "send to 127.0.0.1", "%s", w == 1 ? "sent" : strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* ------------------------------------------------------------------ limits */

/* Allocate and touch memory until the kernel kills us. */
static void cmd_oom(void)
{
    size_t total = 0;
    printf("oom: allocating\n");
    fflush(stdout);
    for (int i = 0; i < 4096; i++) { /* 4 GiB at most */
        char *p = malloc(1 << 20);
        if (!p) {
            fail("oom", "malloc failed after %zu MiB (not killed)", total >> 20);
            return;
        }
        memset(p, 0x5a, 1 << 20);
        total += 1 << 20;
    }
    fail("oom", "allocated %zu MiB and was not killed", total >> 20);
}

/* Fork sleeping children until fork fails; the limit allows at most max - 1 of them. */
static void cmd_forkbomb(const char *max_s)
{
    unsigned long max;
    if (!parse_ul(max_s, 10, &max) || max == 0 || max > 1024) {
        fail("forkbomb", "bad limit %s", max_s);
        return;
    }
    size_t cap = max * 4;
    pid_t *kids = calloc(cap, sizeof(*kids));
    size_t n = 0;
    int err = 0;
    while (kids && n < cap) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                pause();
        }
        if (pid < 0) {
            err = errno;
            break;
        }
        kids[n++] = pid;
    }
    for (size_t i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (size_t i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    free(kids);
    check(err == EAGAIN && n + 1 <= max, "forkbomb", "stopped after %zu forks (%s; limit %lu)", n,
          err ? errname(err) : "never", max);
}

/* As pid 1 of its namespace the task only gets the signals it handles (and SIGKILL):
 * these handlers let the tests see a forwarded signal as exit 128+N. */
static void on_signal(int sig)
{
    char msg[] = "got signal NN\n";
    msg[11] = (char)('0' + sig / 10);
    msg[12] = (char)('0' + sig % 10);
    ssize_t w = write(1, msg, sizeof(msg) - 1);
    (void)w;
    _exit(128 + sig);
}

/* sleep SECS: with handlers for TERM, INT, HUP, QUIT; pause SECS: without any (as pid 1,
 * those signals then do not reach it). */
static void cmd_sleep(const char *secs, bool handlers)
{
    unsigned long s;
    if (!parse_ul(secs, 10, &s)) {
        fail("sleep", "bad duration %s", secs);
        return;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    if (handlers) {
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGQUIT, &sa, NULL);
    }
    printf("sleeping %lu\n", s);
    fflush(stdout);
    struct timespec ts = {.tv_sec = (time_t)s};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    ok("sleep", NULL);
}

/* The task starts with nothing blocked, ignored or caught (a caller's mask or SIG_IGN
 * would survive the exec). */
static void cmd_signals(void)
{
    static const char *const keys[] = {"SigBlk", "SigIgn", "SigCgt"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = status_field(keys[i]);
        check(strcmp(v, "0000000000000000") == 0, keys[i], "%s", v);
    }
}

/* In a cgroup namespace every hierarchy's path is "/". */
static void cmd_cgroupns(void)
{
    char buf[4096];
    if (slurp("/proc/self/cgroup", buf, sizeof(buf)) < 0) {
        fail("cgroupns", "read /proc/self/cgroup: %m");
        return;
    }
    int lines = 0, bad = 0;
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *last = strrchr(line, ':');
        lines++;
        if (!last || strcmp(last, ":/") != 0) {
            bad++;
            fail("cgroupns", "%s", line);
        }
        line = next;
    }
    if (!bad)
        ok("cgroupns", "%d hierarchies at /", lines);
}

/* ------------------------------------------------------------------ process */

/* The pid namespace shows only this task: /proc lists pid 1 and nothing of the host. */
static void cmd_procs(void)
{
    DIR *d = opendir("/proc");
    int n = 0;
    char pids[256] = "";
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        size_t used = strlen(pids);
        int w = snprintf(pids + used, sizeof(pids) - used, "%s%s", n ? "," : "", de->d_name);
        n++;
        if (w < 0 || (size_t)w >= sizeof(pids) - used)
            break; /* a long list is a failure anyway */
    }
    if (d)
        closedir(d);
    check(strcmp(pids, "1") == 0, "procs", "/proc lists %s", pids);
}

/* None of the paths exists in the task (the host's /work, /root, ...). */
static void cmd_absent(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        struct stat st;
        char label[128];
        snprintf(label, sizeof(label), "absent %s", argv[i]);
        int e = lstat(argv[i], &st) < 0 ? errno : 0;
        check(e == ENOENT, label, "%s", e ? errname(e) : "present");
    }
}

static void cmd_env(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        char key[256];
        if (!eq) {
            fail("env", "bad spec %s", argv[i]);
            continue;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]), argv[i]);
        const char *v = getenv(key);
        check(v && strcmp(v, eq + 1) == 0, "env", "%s=%s", key, v ? v : "(unset)");
    }
}

static void cmd_cwd(const char *want)
{
    char buf[4096];
    const char *cwd = getcwd(buf, sizeof(buf));
    check(cwd && strcmp(cwd, want) == 0, "cwd", "%s", cwd ? cwd : "(unknown)");
}

static void cmd_cat(void)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(0, buf, sizeof(buf))) > 0)
        if (write(1, buf, (size_t)n) != n) {
            failures++;
            return;
        }
}

/* ------------------------------------------------------------------ main */

static int arity_error(const char *cmd)
{
    fail(cmd, "wrong number of arguments");
    return 2;
}

/* One subcommand: argv[0] and its arguments. */
static int run(int argc, char **argv)
{
    const char *c = argv[0];
#define ARGS(n)                    \
    do {                           \
        if (argc != (n) + 1)       \
            return arity_error(c); \
    } while (0)
    if (!strcmp(c, "pid1")) {
        ARGS(0);
        cmd_pid1();
    } else if (!strcmp(c, "hostname")) {
        ARGS(1);
        cmd_hostname(argv[1]);
    } else if (!strcmp(c, "ns")) {
        cmd_ns(argc - 1, argv + 1);
    } else if (!strcmp(c, "caps")) {
        ARGS(2);
        cmd_caps(argv[1], argv[2]);
    } else if (!strcmp(c, "nnp")) {
        ARGS(0);
        cmd_nnp();
    } else if (!strcmp(c, "user")) {
        ARGS(2);
        cmd_user(argv[1], argv[2]);
    } else if (!strcmp(c, "idmap")) {
        ARGS(2);
        cmd_idmap(argv[1], argv[2]);
    } else if (!strcmp(c, "seccomp")) {
        ARGS(0);
        cmd_seccomp();
    } else if (!strcmp(c, "seccomp-admin")) {
        ARGS(0);
        cmd_seccomp_admin();
    } else if (!strcmp(c, "sys")) {
        expect_calls(argc - 1, (const char *const *)argv + 1);
    } else if (!strcmp(c, "unconfined")) {
        ARGS(0);
        cmd_unconfined();
    } else if (!strcmp(c, "readonly")) {
        cmd_readonly(argc - 1, argv + 1);
    } else if (!strcmp(c, "writable")) {
        cmd_writable(argc - 1, argv + 1);
    } else if (!strcmp(c, "masked")) {
        ARGS(0);
        cmd_masked();
    } else if (!strcmp(c, "unmasked")) {
        ARGS(0);
        cmd_unmasked();
    } else if (!strcmp(c, "mounts")) {
        ARGS(0);
        cmd_mounts();
    } else if (!strcmp(c, "dev")) {
        ARGS(0);
        cmd_dev();
    } else if (!strcmp(c, "secret")) {
        ARGS(5);
        cmd_secret(argv[1], argv[2], argv[3], argv[4], argv[5]);
    } else if (!strcmp(c, "net")) {
        ARGS(0);
        cmd_net();
    } else if (!strcmp(c, "oom")) {
        ARGS(0);
        cmd_oom();
    } else if (!strcmp(c, "forkbomb")) {
        ARGS(1);
        cmd_forkbomb(argv[1]);
    } else if (!strcmp(c, "sleep") || !strcmp(c, "pause")) {
        ARGS(1);
        cmd_sleep(argv[1], !strcmp(c, "sleep"));
    } else if (!strcmp(c, "signals")) {
        ARGS(0);
        cmd_signals();
    } else if (!strcmp(c, "cgroupns")) {
        ARGS(0);
        cmd_cgroupns();
    } else if (!strcmp(c, "procs")) {
        ARGS(0);
        cmd_procs();
    } else if (!strcmp(c, "absent")) {
        cmd_absent(argc - 1, argv + 1);
    } else if (!strcmp(c, "env")) {
        cmd_env(argc - 1, argv + 1);
    } else if (!strcmp(c, "cwd")) {
        ARGS(1);
        cmd_cwd(argv[1]);
    } else if (!strcmp(c, "cat")) {
        ARGS(0);
        cmd_cat();
    } else if (!strcmp(c, "exit")) {
        unsigned long code;
        ARGS(1);
        if (!parse_ul(argv[1], 10, &code) || code > 255)
            return arity_error(c);
        fflush(stdout);
        _exit((int)code);
    } else {
        fail(c, "unknown subcommand");
        return 2;
    }
#undef ARGS
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: probe SUBCOMMAND [ARG...] [+ SUBCOMMAND [ARG...]]...\n");
        return 2;
    }
    for (int i = 1; i < argc;) {
        int j = i;
        while (j < argc && strcmp(argv[j], "+") != 0)
            j++;
        if (j > i) {
            int r = run(j - i, argv + i);
            if (r)
                return r;
        }
        i = j + 1;
    }
    return failures ? 1 : 0;
}
