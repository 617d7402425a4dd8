/* The process-wide runtime: cgroup layout, the tasks' parent cgroup, the run dir, and
 * the compiled default seccomp filters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "runtime/task.h"

int rt_runtime_create(const struct rt_config *cfg, rt_runtime **ret, char *errmsg,
                      size_t errmsg_size)
{
    rt_runtime *rt = calloc(1, sizeof(*rt));
    int r;
    if (!rt)
        return -ENOMEM;
    rt->run_dir = strdup(cfg->run_dir ? cfg->run_dir : "/run/swarmd");
    rt->cgroup_parent = strdup(cfg->cgroup_parent ? cfg->cgroup_parent : "swarmd");
    if (!rt->run_dir || !rt->cgroup_parent) {
        r = -ENOMEM;
        goto fail;
    }
    r = rt__cgroup_detect(cfg->cgroup_root ? cfg->cgroup_root : "/sys/fs/cgroup", cfg->cgroup_mode,
                          "/proc/self/cgroup", "/proc/self/mountinfo", &rt->cg, errmsg,
                          errmsg_size);
    if (r < 0)
        goto fail;
    r = rt__cgroup_prepare_parent(&rt->cg, rt->cgroup_parent, errmsg, errmsg_size);
    if (r < 0)
        goto fail;
    r = snprintf(rt->root_mountpoint, sizeof(rt->root_mountpoint), "%s/root", rt->run_dir);
    if (r < 0 || (size_t)r >= sizeof(rt->root_mountpoint)) {
        snprintf(errmsg, errmsg_size, "run dir %s: path too long", rt->run_dir);
        r = -ENAMETOOLONG;
        goto fail;
    }
    /* 0711: the root of a task's user namespace (an unprivileged host uid) must be able
     * to reach the mountpoint; there is nothing to list in it */
    r = sw_mkdir_p(rt->root_mountpoint, 0711);
    if (r >= 0 && (chmod(rt->run_dir, 0711) < 0 || chmod(rt->root_mountpoint, 0711) < 0))
        r = -errno;
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "cannot create %s: %s", rt->root_mountpoint, strerror(-r));
        goto fail;
    }
    const rt_seccomp *s;
    r = rt__runtime_seccomp(rt, RT_CAPS_DEFAULT, &s, errmsg, errmsg_size);
    if (r < 0)
        goto fail;
    *ret = rt;
    return 0;
fail:
    rt_runtime_free(rt);
    return r;
}

void rt_runtime_free(rt_runtime *rt)
{
    if (!rt)
        return;
    /* the parent goes too when no other runtime has tasks under it (rmdir of a busy
     * cgroup fails, and that is fine) */
    if (rt->cg.mode != RT_CGROUP_AUTO && rt->cgroup_parent)
        rt__cgroup_release_parent(&rt->cg, rt->cgroup_parent);
    for (unsigned i = 0; i < rt->n_seccomp_cache; i++)
        rt_seccomp_free(rt->seccomp_cache[i].filter);
    free(rt->run_dir);
    free(rt->cgroup_parent);
    free(rt);
}

enum rt_cgroup_mode rt_runtime_cgroup_mode(const rt_runtime *rt)
{
    return rt->cg.mode;
}

int rt__runtime_seccomp(rt_runtime *rt, uint64_t caps, const rt_seccomp **ret, char *errmsg,
                        size_t errmsg_size)
{
    for (unsigned i = 0; i < rt->n_seccomp_cache; i++)
        if (rt->seccomp_cache[i].caps == caps) {
            *ret = rt->seccomp_cache[i].filter;
            return 0;
        }
    rt_seccomp *s;
    int r = rt_seccomp_default(caps, &s, errmsg, errmsg_size);
    if (r < 0)
        return r;
    /* a small cache: the slot of the oldest entry (after the first, the default set) */
    unsigned slot = rt->n_seccomp_cache;
    if (slot == RT_SECCOMP_CACHE) {
        slot = 1 + (unsigned)(caps % (RT_SECCOMP_CACHE - 1));
        rt_seccomp_free(rt->seccomp_cache[slot].filter);
    } else {
        rt->n_seccomp_cache++;
    }
    rt->seccomp_cache[slot].caps = caps;
    rt->seccomp_cache[slot].filter = s;
    *ret = s;
    return 0;
}
