/* Leftovers of a previous run: processes still in task cgroups under this runtime's parent
 * (the daemon was SIGKILLed, its tasks lived on) are killed and their cgroups removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/task.h"

#define DEPTH_MAX 8

static int join(char *buf, size_t size, const char *a, const char *b)
{
    int n = snprintf(buf, size, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return 0;
}

/* mount + self + "/" + parent: where this runtime's task cgroups live in one hierarchy. */
static int parent_dir(char *buf, size_t size, const char *mount, const char *self,
                      const char *parent)
{
    while (*self == '/')
        self++;
    int n = *self ? snprintf(buf, size, "%s/%s/%s", mount, self, parent)
                  : snprintf(buf, size, "%s/%s", mount, parent);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return 0;
}

/* How many processes cgroup.procs lists in dir. */
static unsigned count_procs(const char *dir)
{
    char path[RT_CGROUP_PATH_MAX + 16];
    if (join(path, sizeof(path), dir, "cgroup.procs") < 0)
        return 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned n = 0;
    bool in_number = false;
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof(buf))) > 0 || (got < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < got; i++) {
            bool digit = buf[i] >= '0' && buf[i] <= '9';
            if (digit && !in_number)
                n++;
            in_number = digit;
        }
    }
    return n;
}

/* Kill what dir and its sub-cgroups hold, then remove them, innermost first. */
static int purge(const char *dir, bool v2, unsigned depth, unsigned *killed)
{
    int ret = 0;
    if (depth < DEPTH_MAX) {
        DIR *d = opendir(dir);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                    continue;
                bool is_dir = de->d_type == DT_DIR;
                if (de->d_type == DT_UNKNOWN) {
                    struct stat st;
                    is_dir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                             S_ISDIR(st.st_mode);
                }
                char sub[RT_CGROUP_PATH_MAX];
                if (!is_dir || join(sub, sizeof(sub), dir, de->d_name) < 0)
                    continue;
                int r = purge(sub, v2, depth + 1, killed);
                if (r < 0 && ret == 0)
                    ret = r;
            }
            closedir(d);
        }
    }
    *killed += count_procs(dir);
    struct rt_cgroup cg;
    rt__cgroup_init(&cg);
    cg.mode = v2 ? RT_CGROUP_V2 : RT_CGROUP_V1;
    snprintf(v2 ? cg.v2 : cg.memory, RT_CGROUP_PATH_MAX, "%s", dir);
    int r = rt__cgroup_destroy(&cg);
    return ret < 0 ? ret : r;
}

/* Every task cgroup under one hierarchy's parent dir. */
static int purge_hierarchy(const char *mount, const char *self, const char *parent, bool v2,
                           unsigned *killed)
{
    char base[RT_CGROUP_PATH_MAX];
    if (!mount[0])
        return 0;
    if (parent_dir(base, sizeof(base), mount, self, parent) < 0)
        return -ENAMETOOLONG;
    DIR *d = opendir(base);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int ret = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        char dir[RT_CGROUP_PATH_MAX];
        if (join(dir, sizeof(dir), base, de->d_name) < 0)
            continue;
        int r = purge(dir, v2, 0, killed);
        if (r < 0 && ret == 0)
            ret = r;
    }
    closedir(d);
    return ret;
}

int rt_runtime_kill_leftovers(rt_runtime *rt, unsigned *ret_killed)
{
    const struct rt_cgroup_layout *l = &rt->cg;
    unsigned killed = 0;
    int ret = 0;
    if (l->mode == RT_CGROUP_V2) {
        ret = purge_hierarchy(l->v2_mount, l->self_v2, rt->cgroup_parent, true, &killed);
    } else if (l->mode == RT_CGROUP_V1) {
        /* a process shows up in every hierarchy: count the largest tally */
        const char *mounts[] = {l->v1_memory, l->v1_cpu, l->v1_pids};
        const char *selfs[] = {l->self_memory, l->self_cpu, l->self_pids};
        for (size_t i = 0; i < SW_ARRAY_SIZE(mounts); i++) {
            unsigned k = 0;
            int r = purge_hierarchy(mounts[i], selfs[i], rt->cgroup_parent, false, &k);
            if (r < 0 && ret == 0)
                ret = r;
            killed = k > killed ? k : killed;
        }
    } else {
        return -EINVAL;
    }
    if (ret < 0)
        return ret;
    if (ret_killed)
        *ret_killed = killed;
    return 0;
}
