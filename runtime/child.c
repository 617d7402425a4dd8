/* The task side of a start: everything between clone3 and execve. Runs in a copy of the
 * caller's address space that other threads may have left with locks held, so it uses
 * raw system calls and stack buffers only — no malloc, no stdio, no locale. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/child.h"
#include "runtime/internal.h"

/* ------------------------------------------------------------------ small helpers */

/* Append src to dst (size bytes); false if it does not fit. */
static bool cat(char *dst, size_t size, const char *src)
{
    size_t n = strlen(dst), m = strlen(src);
    if (n + m + 1 > size)
        return false;
    memcpy(dst + n, src, m + 1);
    return true;
}

/* dst = a + b (+ c) */
static bool join(char *dst, size_t size, const char *a, const char *b, const char *c)
{
    dst[0] = '\0';
    return cat(dst, size, a) && cat(dst, size, b) && (!c || cat(dst, size, c));
}

static void report(const struct rt_child *c, const char *step, const char *detail, int err)
{
    struct rt_child_error e;
    memset(&e, 0, sizeof(e));
    e.err = err;
    join(e.msg, sizeof(e.msg), step, detail && *detail ? " " : "", detail);
    ssize_t n;
    do
        n = write(c->err_fd, &e, sizeof(e));
    while (n < 0 && errno == EINTR);
}

#define FAIL(step, detail)                  \
    do {                                    \
        report(c, (step), (detail), errno); \
        _exit(RT_CHILD_EXIT_SETUP);         \
    } while (0)

static unsigned long mount_flags_of(const char *path)
{
    struct statvfs s;
    unsigned long f = 0;
    if (statvfs(path, &s) < 0)
        return 0;
    /* flags a user namespace may not clear on a bind remount */
    if (s.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (s.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (s.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (s.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (s.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (s.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

/* Bind src onto dst read-only (recursive). */
static int bind_ro(const char *src, const char *dst)
{
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -1;
    return mount(NULL, dst, NULL,
                 MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | mount_flags_of(dst),
                 NULL);
}

static int touch(const char *path, mode_t mode)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

static int mkdir_if(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ the root */

/* The default root: a small tmpfs holding read-only binds of the host's system dirs;
 * merged-/usr symlinks (/bin -> usr/bin) are copied as symlinks. */
static void default_root(const struct rt_child *c, const char *root)
{
    static const char *const dirs[] = {"/usr",   "/bin",   "/sbin",   "/lib",
                                       "/lib32", "/lib64", "/libx32", "/etc"};
    char path[RT_CHILD_PATH], link[RT_CHILD_PATH];

    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=65536k") < 0)
        FAIL("rootfs: mount tmpfs on", root);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        struct stat st;
        if (lstat(dirs[i], &st) < 0)
            continue;
        if (!join(path, sizeof(path), root, dirs[i], NULL))
            FAIL("rootfs: path too long:", dirs[i]);
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(dirs[i], link, sizeof(link) - 1);
            if (n < 0)
                FAIL("rootfs: readlink", dirs[i]);
            link[n] = '\0';
            if (symlink(link, path) < 0)
                FAIL("rootfs: symlink", path);
            continue;
        }
        if (!S_ISDIR(st.st_mode))
            continue;
        if (mkdir_if(path, 0755) < 0 || bind_ro(dirs[i], path) < 0)
            FAIL("rootfs: bind read-only", dirs[i]);
    }
}

static void mount_dev(const struct rt_child *c, const char *root)
{
    static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {
        {"pts/ptmx", "ptmx"},          {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"},
        {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
    };
    char dev[RT_CHILD_PATH], path[RT_CHILD_PATH], host[64];

    if (!join(dev, sizeof(dev), root, "/dev", NULL) || mkdir_if(dev, 0755) < 0 ||
        mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k") < 0)
        FAIL("dev: mount tmpfs on", dev);
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
        join(path, sizeof(path), dev, "/", devices[i]);
        join(host, sizeof(host), "/dev/", devices[i], NULL);
        if (touch(path, 0666) < 0 || mount(host, path, NULL, MS_BIND, NULL) < 0)
            FAIL("dev: bind", host);
    }
    join(path, sizeof(path), dev, "/pts", NULL);
    if (mkdir_if(path, 0755) < 0 || mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
                                          "newinstance,ptmxmode=0666,mode=0620") < 0)
        FAIL("dev: mount devpts on", path);
    join(path, sizeof(path), dev, "/shm", NULL);
    if (mkdir_if(path, 01777) < 0 ||
        mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0)
        FAIL("dev: mount tmpfs on", path);
    join(path, sizeof(path), dev, "/mqueue", NULL);
    if (mkdir_if(path, 0755) < 0 ||
        mount("mqueue", path, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        FAIL("dev: mount mqueue on", path);
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        join(path, sizeof(path), dev, "/", links[i][1]);
        if (symlink(links[i][0], path) < 0 && errno != EEXIST)
            FAIL("dev: symlink", path);
    }
}

static void mount_secrets(const struct rt_child *c, const char *root)
{
    char dir[RT_CHILD_PATH], path[RT_CHILD_PATH], opts[96];

    if (!join(dir, sizeof(dir), root, "/run", NULL) || mkdir_if(dir, 0755) < 0 ||
        !cat(dir, sizeof(dir), "/secrets") || mkdir_if(dir, 0755) < 0)
        FAIL("secrets: mkdir", dir);
    /* size: the data plus a page per file, in KiB */
    unsigned long kib = 64;
    for (size_t i = 0; i < c->n_secrets; i++)
        kib += (unsigned long)(c->secrets[i].len / 1024) + 8;
    char num[24];
    size_t n = 0;
    char rev[24];
    do
        rev[n++] = (char)('0' + kib % 10);
    while ((kib /= 10) && n < sizeof(rev));
    for (size_t i = 0; i < n; i++)
        num[i] = rev[n - 1 - i];
    num[n] = '\0';
    join(opts, sizeof(opts), "mode=0755,size=", num, "k");
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
        FAIL("secrets: mount tmpfs on", dir);
    for (size_t i = 0; i < c->n_secrets; i++) {
        const struct rt_secret *s = &c->secrets[i];
        join(path, sizeof(path), dir, "/", s->name);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            FAIL("secrets: create", s->name);
        size_t off = 0;
        while (off < s->len) {
            ssize_t w = write(fd, s->data + off, s->len - off);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                FAIL("secrets: write", s->name);
            }
            off += (size_t)w;
        }
        if (fchown(fd, s->uid, s->gid) < 0 || fchmod(fd, s->mode ? s->mode : 0444) < 0)
            FAIL("secrets: set owner and mode of", s->name);
        close(fd);
    }
    if (mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0)
        FAIL("secrets: remount read-only", dir);
}

/* Paths Docker hides from a task: files get /dev/null, directories an empty read-only
 * tmpfs; a missing path is skipped. */
static void mask_paths(const struct rt_child *c)
{
    static const char *const masked[] = {
        "/proc/asound",      "/proc/acpi",          "/proc/kcore",
        "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug",   "/proc/scsi",
        "/proc/interrupts",  "/sys/firmware",       "/sys/devices/virtual/powercap",
    };
    static const char *const readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                           "/proc/sysrq-trigger"};
    for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
        struct stat st;
        if (stat(masked[i], &st) < 0)
            continue;
        int r = S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs",
                                            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k")
                                    : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
        if (r < 0)
            FAIL("mask", masked[i]);
    }
    for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++) {
        if (access(readonly[i], F_OK) < 0)
            continue;
        if (bind_ro(readonly[i], readonly[i]) < 0)
            FAIL("read-only path", readonly[i]);
    }
}

static void setup_root(const struct rt_child *c)
{
    const char *root = c->root;
    char path[RT_CHILD_PATH];

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        FAIL("mount: make / private", "");
    if (c->rootfs) {
        if (mount(c->rootfs, root, NULL, MS_BIND | MS_REC, NULL) < 0)
            FAIL("rootfs:", c->rootfs);
    } else {
        default_root(c, root);
    }
    static const char *const mountpoints[] = {"/proc", "/sys", "/tmp", "/run"};
    for (size_t i = 0; i < sizeof(mountpoints) / sizeof(mountpoints[0]); i++) {
        join(path, sizeof(path), root, mountpoints[i], NULL);
        if (mkdir_if(path, i == 2 ? 01777 : 0755) < 0)
            FAIL("rootfs: mkdir", path);
    }
    join(path, sizeof(path), root, "/proc", NULL);
    if (mount("proc", path, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0)
        FAIL("mount proc on", path);
    join(path, sizeof(path), root, "/sys", NULL);
    if (mount("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0 &&
        bind_ro("/sys", path) < 0)
        FAIL("mount sysfs on", path);
    mount_dev(c, root);
    if (c->n_secrets)
        mount_secrets(c, root);
    if (c->read_only) {
        join(path, sizeof(path), root, "/tmp", NULL);
        if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k") < 0)
            FAIL("mount tmpfs on", path);
    }

    /* pivot_root(".", "."): the old root ends up on top of the new one; detach it */
    if (chdir(root) < 0)
        FAIL("rootfs: chdir", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        FAIL("pivot_root into", root);
    if (umount2(".", MNT_DETACH) < 0)
        FAIL("pivot_root: detach the old root", "");
    if (chdir("/") < 0)
        FAIL("chdir /", "");
    if (!c->privileged)
        mask_paths(c);
    if (c->read_only &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | mount_flags_of("/"), NULL) < 0)
        FAIL("remount the root read-only", "");
}

static void loopback_up(const struct rt_child *c)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    if (fd < 0)
        FAIL("network: socket", "");
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        FAIL("network: get flags of lo", "");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        FAIL("network: bring lo up", "");
    close(fd);
}

/* execve argv[0]; without a '/', each PATH entry of the task's environment in turn. */
static __attribute__((noreturn)) void exec_task(const struct rt_child *c)
{
    const char *name = c->argv[0];
    if (strchr(name, '/')) {
        execve(name, c->argv, c->env);
        FAIL("exec", name);
    }
    const char *pathvar = c->path;
    char buf[RT_CHILD_PATH];
    int saved = ENOENT;
    for (const char *p = pathvar;;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n + 1 + strlen(name) + 1 <= sizeof(buf)) {
            memcpy(buf, p, n);
            buf[n] = '/';
            memcpy(buf + n + 1, name, strlen(name) + 1);
            execve(buf, c->argv, c->env);
            if (errno != ENOENT && errno != ENOTDIR)
                saved = errno;
        }
        if (!end)
            break;
        p = end + 1;
    }
    errno = saved;
    FAIL("exec", name);
}

void rt__child_main(const struct rt_child *c)
{
    char b;
    ssize_t n;

    /* a clean slate: the caller may block or ignore signals (SIGPIPE, the ones it reads
     * from a signalfd), and both would survive execve. Everything is blocked until the
     * dispositions are back to default (the caller blocked all around clone3). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* the task must not outlive the process that supervises it (no shim keeps it) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        FAIL("prctl PR_SET_PDEATHSIG", "");
    /* wait for the caller: cgroup attached (v1), id maps written (user namespace) */
    if (c->sync_fd >= 0) {
        do
            n = read(c->sync_fd, &b, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(RT_CHILD_EXIT_SETUP); /* the caller gave up */
        close(c->sync_fd);
    }
    /* in a new user namespace this process starts as the overflow uid: be its root */
    if (c->userns && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
        FAIL("user namespace: become root", "");
    if (c->unshare_cgroup && unshare(CLONE_NEWCGROUP) < 0)
        FAIL("unshare the cgroup namespace", "");
    for (int i = 0; i < 3; i++)
        if (c->stdio[i] != i && dup2(c->stdio[i], i) < 0)
            FAIL("stdio: dup2", "");
    if (sethostname(c->hostname, strlen(c->hostname)) < 0)
        FAIL("sethostname", c->hostname);
    setup_root(c);
    if (c->new_net)
        loopback_up(c);
    if (rt__caps_bound(c->caps) < 0)
        FAIL("capabilities: drop from the bounding set", "");
    if (c->user_set) {
        if (setgroups(0, NULL) < 0)
            FAIL("setgroups", "");
        if (setresgid(c->gid, c->gid, c->gid) < 0)
            FAIL("setgid", c->gid_str);
        if (setresuid(c->uid, c->uid, c->uid) < 0)
            FAIL("setuid", c->uid_str);
    }
    if ((!c->user_set || c->uid == 0) && rt__caps_set(c->caps) < 0)
        FAIL("capabilities: set", "");
    if (chdir(c->workdir) < 0)
        FAIL("chdir", c->workdir);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        FAIL("no_new_privs", "");
    /* every other descriptor closes at exec */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        FAIL("close_range", "");
    if (c->seccomp && rt_seccomp_load(c->seccomp) < 0)
        FAIL("seccomp: load the filter", "");
    exec_task(c);
}
