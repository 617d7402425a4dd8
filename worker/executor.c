/* The worker's executor: runs the tasks assigned to this node with runtime/, holds the
 * secrets they need in memory only, and queues their status updates for the agent. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/runtime.h"
#include "worker/internal.h"

#define STOP_GRACE_DEFAULT_MS 10000u
#define TASK_ID_MAX 64
#define TOMBSTONES 1024 /* ids of removed tasks: never started again */

enum phase {
    PH_RUNNING = 1, /* started, not exited yet */
    PH_DONE,        /* exited, failed to start, or never to be started */
};

struct wsecret {
    struct wsecret *next;
    char *id;
    char *name;
    uint8_t *data;
    size_t len;
    bool removed; /* the manager dropped it: wipe once no task here references it */
    bool seen;    /* in the full set being applied */
};

struct wtask {
    struct wtask *next;
    wrk__exec *x;
    char id[TASK_ID_MAX + 1];
    enum phase phase;
    bool stopping; /* SIGTERM sent: its end is reported as SHUTDOWN */
    bool forget;   /* removed by the manager: freed once it ended */
    bool seen;
    char **secret_ids;
    size_t n_secret_ids;
    rt_task *rt;
    uv_poll_t poll;
    uv_timer_t kill_timer;
    bool poll_init, timer_init;
    int handles; /* poll and kill_timer while initialised and not yet closed */
};

struct wupdate {
    char task_id[TASK_ID_MAX + 1];
    Swarm__TaskState state;
    char message[64];
    char err[256];
    int32_t exit_code;
    int32_t pid;
};

/* A session message that arrived before the runtime settled (packed; may hold secrets). */
struct deferred {
    struct deferred *next;
    uint8_t *buf;
    size_t len;
};

struct wrk__exec {
    uv_loop_t *loop;
    rt_runtime *rt;
    char *run_dir;
    char *cgroup_parent;

    /* written by the thread-pool work, read on the loop only once settled */
    uv_work_t rt_work;
    rt_runtime *work_rt;
    char rt_error[256];
    unsigned leftovers;
    int leftovers_err;
    bool settled;
    wrk__exec_notify_fn settled_cb;
    struct deferred *deferred, **deferred_tail;

    uint64_t stop_grace_ms;
    wrk__exec_notify_fn notify;
    void *userdata;

    struct wtask *tasks;
    struct wsecret *secrets;
    char (*tombstones)[TASK_ID_MAX + 1];
    size_t n_tombstones, next_tombstone;

    struct wupdate *upd;
    size_t n_upd, cap_upd, n_in_flight;

    bool closing;
    int handles_open; /* of all tasks */
    void (*close_cb)(void *userdata);
    void *close_userdata;
};

/* ------------------------------------------------------------------ updates */

static void queue_update(wrk__exec *x, const char *task_id, Swarm__TaskState state,
                         const char *message, const char *err, int exit_code, pid_t pid)
{
    if (x->closing)
        return;
    struct wupdate *u = NULL;
    /* an unsent update of the same task is replaced: only the latest state matters */
    for (size_t i = x->n_in_flight; i < x->n_upd; i++)
        if (strcmp(x->upd[i].task_id, task_id) == 0)
            u = &x->upd[i];
    if (!u) {
        if (x->n_upd == x->cap_upd) {
            size_t cap = x->cap_upd ? x->cap_upd * 2 : 32;
            struct wupdate *n = realloc(x->upd, cap * sizeof(*n));
            if (!n) {
                log_debug("executor: out of memory, status of %s not reported", task_id);
                return;
            }
            x->upd = n;
            x->cap_upd = cap;
        }
        u = &x->upd[x->n_upd++];
    }
    memset(u, 0, sizeof(*u));
    snprintf(u->task_id, sizeof(u->task_id), "%s", task_id);
    u->state = state;
    snprintf(u->message, sizeof(u->message), "%s", message ? message : "");
    snprintf(u->err, sizeof(u->err), "%s", err ? err : "");
    u->exit_code = exit_code;
    u->pid = pid;
    log_debug("executor: task %s -> %d %s %s", task_id, (int)state, u->message, u->err);
    if (x->notify)
        x->notify(x->userdata);
}

size_t wrk__exec_updates_unsent(const wrk__exec *x)
{
    return x->n_upd - x->n_in_flight;
}

int wrk__exec_updates_pack(wrk__exec *x, const char *session_id, size_t max, uint8_t **ret_buf,
                           size_t *ret_len, size_t *ret_n)
{
    size_t n = SW_MIN(max, x->n_upd - x->n_in_flight);
    if (x->n_in_flight > 0 || n == 0) {
        *ret_buf = NULL;
        *ret_len = 0;
        *ret_n = 0;
        return 0;
    }
    _cleanup_free_ Swarm__TaskStatusUpdate *items = calloc(n, sizeof(*items));
    _cleanup_free_ Swarm__TaskStatusUpdate **ptrs = calloc(n, sizeof(*ptrs));
    if (!items || !ptrs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct wupdate *u = &x->upd[i];
        swarm__task_status_update__init(&items[i]);
        items[i].task_id = u->task_id;
        items[i].state = u->state;
        items[i].message = u->message;
        items[i].err = u->err;
        items[i].exit_code = u->exit_code;
        items[i].pid = u->pid;
        ptrs[i] = &items[i];
    }
    Swarm__UpdateTaskStatusRequest req = SWARM__UPDATE_TASK_STATUS_REQUEST__INIT;
    req.session_id = (char *)(session_id ? session_id : "");
    req.updates = ptrs;
    req.n_updates = n;
    int r = proto_pack(&req.base, ret_buf, ret_len);
    if (r < 0)
        return r;
    x->n_in_flight = n;
    *ret_n = n;
    return 0;
}

void wrk__exec_updates_done(wrk__exec *x, bool committed)
{
    size_t k = x->n_in_flight;
    x->n_in_flight = 0;
    if (k == 0)
        return;
    if (committed) {
        memmove(x->upd, x->upd + k, (x->n_upd - k) * sizeof(*x->upd));
        x->n_upd -= k;
        return;
    }
    /* kept for the next try; a sent entry of a task with a newer one queued is dropped */
    size_t out = 0;
    for (size_t i = 0; i < x->n_upd; i++) {
        bool newer = false;
        for (size_t j = k; i < k && j < x->n_upd && !newer; j++)
            newer = strcmp(x->upd[i].task_id, x->upd[j].task_id) == 0;
        if (!newer)
            x->upd[out++] = x->upd[i];
    }
    x->n_upd = out;
}

/* ------------------------------------------------------------------ secrets */

static struct wsecret *secret_find(wrk__exec *x, const char *id)
{
    for (struct wsecret *s = x->secrets; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void secret_free(struct wsecret *s)
{
    if (!s)
        return;
    sw_erase(s->data, s->len);
    free(s->data);
    free(s->id);
    free(s->name);
    free(s);
}

static void secret_put(wrk__exec *x, const Swarm__Secret *m)
{
    if (!m->id || !m->id[0])
        return;
    struct wsecret *s = secret_find(x, m->id);
    if (s) {
        s->removed = false;
        s->seen = true;
        if (s->len == m->data.len && (!s->len || memcmp(s->data, m->data.data, s->len) == 0))
            return;
    }
    uint8_t *data = malloc(m->data.len ? m->data.len : 1);
    if (!data) {
        log_debug("executor: out of memory holding secret %s", m->id);
        return;
    }
    if (m->data.len)
        memcpy(data, m->data.data, m->data.len);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || !(s->id = strdup(m->id)) || !(s->name = strdup(m->name ? m->name : ""))) {
            sw_erase(data, m->data.len);
            free(data);
            secret_free(s);
            log_debug("executor: out of memory holding secret %s", m->id);
            return;
        }
        s->seen = true;
        s->next = x->secrets;
        x->secrets = s;
    } else {
        sw_erase(s->data, s->len);
        free(s->data);
    }
    s->data = data;
    s->len = m->data.len;
}

static bool secret_referenced(const wrk__exec *x, const char *id)
{
    for (const struct wtask *t = x->tasks; t; t = t->next)
        for (size_t i = 0; i < t->n_secret_ids; i++)
            if (strcmp(t->secret_ids[i], id) == 0)
                return true;
    return false;
}

/* Wipe the secrets the manager removed and no task here references any more. */
static void secrets_gc(wrk__exec *x)
{
    for (struct wsecret **p = &x->secrets; *p;) {
        struct wsecret *s = *p;
        if (s->removed && !secret_referenced(x, s->id)) {
            *p = s->next;
            log_debug("executor: secret %s dropped", s->id);
            secret_free(s);
        } else {
            p = &s->next;
        }
    }
}

/* ------------------------------------------------------------------ tasks */

static struct wtask *task_find(wrk__exec *x, const char *id)
{
    for (struct wtask *t = x->tasks; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

static bool tombstoned(const wrk__exec *x, const char *id)
{
    for (size_t i = 0; i < x->n_tombstones; i++)
        if (strcmp(x->tombstones[i], id) == 0)
            return true;
    return false;
}

static void tombstone(wrk__exec *x, const char *id)
{
    if (!x->tombstones && !(x->tombstones = calloc(TOMBSTONES, sizeof(*x->tombstones))))
        return;
    snprintf(x->tombstones[x->next_tombstone], sizeof(x->tombstones[0]), "%s", id);
    x->next_tombstone = (x->next_tombstone + 1) % TOMBSTONES;
    if (x->n_tombstones < TOMBSTONES)
        x->n_tombstones++;
}

static void task_free(struct wtask *t)
{
    for (size_t i = 0; i < t->n_secret_ids; i++)
        free(t->secret_ids[i]);
    free(t->secret_ids);
    free(t);
}

static void exec_maybe_closed(wrk__exec *x);

/* Unlink and free a task that ended and was removed, once its handles are closed. */
static void task_maybe_free(struct wtask *t)
{
    wrk__exec *x = t->x;
    if (!t->forget || t->phase != PH_DONE || t->handles > 0 || x->closing)
        return;
    for (struct wtask **p = &x->tasks; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    tombstone(x, t->id);
    task_free(t);
    secrets_gc(x);
}

static void task_handle_closed(uv_handle_t *h)
{
    struct wtask *t = h->data;
    wrk__exec *x = t->x;
    t->handles--;
    x->handles_open--;
    if (x->closing)
        exec_maybe_closed(x);
    else
        task_maybe_free(t);
}

static void task_close_handles(struct wtask *t)
{
    if (t->poll_init && !uv_is_closing((uv_handle_t *)&t->poll))
        uv_close((uv_handle_t *)&t->poll, task_handle_closed);
    if (t->timer_init && !uv_is_closing((uv_handle_t *)&t->kill_timer))
        uv_close((uv_handle_t *)&t->kill_timer, task_handle_closed);
}

static void task_exited(struct wtask *t)
{
    wrk__exec *x = t->x;
    struct rt_exit e;
    int r = rt_task_reap(t->rt, &e);
    if (r == -EAGAIN)
        return;
    uv_poll_stop(&t->poll);
    uv_timer_stop(&t->kill_timer);
    if (r < 0) {
        memset(&e, 0, sizeof(e));
        e.exit_code = -1;
    }
    rt_task_cleanup(t->rt); /* after a failed reap this kills and waits */
    t->rt = NULL;
    t->phase = PH_DONE;
    char err[64];
    if (t->stopping) {
        queue_update(x, t->id, SWARM__TASK_STATE__TASK_SHUTDOWN, "shutdown", NULL, e.exit_code, 0);
    } else if (e.exit_code == 0 && r >= 0) {
        queue_update(x, t->id, SWARM__TASK_STATE__TASK_COMPLETE, "finished", NULL, 0, 0);
    } else {
        if (e.oom)
            snprintf(err, sizeof(err), "OOM killed");
        else if (r < 0)
            snprintf(err, sizeof(err), "task: cannot collect its exit: %s", strerror(-r));
        else
            snprintf(err, sizeof(err), "task: non-zero exit (%d)", e.exit_code);
        queue_update(x, t->id, SWARM__TASK_STATE__TASK_FAILED, "failed", err, e.exit_code, 0);
    }
    task_close_handles(t);
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    task_exited(p->data);
}

static void on_kill_timer(uv_timer_t *timer)
{
    struct wtask *t = timer->data;
    if (t->rt)
        rt_task_signal(t->rt, SIGKILL);
}

static void task_stop(struct wtask *t)
{
    if (t->phase != PH_RUNNING || t->stopping)
        return;
    t->stopping = true;
    log_debug("executor: stopping task %s", t->id);
    /* a task's pid 1 ignores SIGTERM unless it handles it: SIGKILL after the grace */
    if (rt_task_signal(t->rt, SIGTERM) < 0 || t->x->stop_grace_ms == 0)
        rt_task_signal(t->rt, SIGKILL);
    else
        uv_timer_start(&t->kill_timer, on_kill_timer, t->x->stop_grace_ms, 0);
}

/* "UID[:GID]", numeric. */
static int parse_user(const char *s, uid_t *ret_uid, gid_t *ret_gid)
{
    char *end;
    if (s[0] < '0' || s[0] > '9' || strchr(s, '-') || strchr(s, ' '))
        return -EINVAL;
    errno = 0;
    unsigned long uid = strtoul(s, &end, 10);
    if (errno || end == s || uid > 0xfffffffeUL || (*end && *end != ':'))
        return -EINVAL;
    unsigned long gid = 0;
    if (*end == ':') {
        const char *g = end + 1;
        errno = 0;
        gid = strtoul(g, &end, 10);
        if (errno || end == g || *g < '0' || *g > '9' || gid > 0xfffffffeUL || *end)
            return -EINVAL;
    }
    *ret_uid = (uid_t)uid;
    *ret_gid = (gid_t)gid;
    return 0;
}

static int parse_caps(const Swarm__TaskSpec *s, uint64_t *ret, char *err, size_t size)
{
    uint64_t adds = 0, drops = 0;
    bool add_all = false, drop_all = false;
    for (int pass = 0; pass < 2; pass++) {
        char **names = pass == 0 ? s->cap_add : s->cap_drop;
        size_t n = pass == 0 ? s->n_cap_add : s->n_cap_drop;
        for (size_t i = 0; i < n; i++) {
            int bit;
            bool all;
            if (rt_cap_parse(names[i], &bit, &all) < 0) {
                snprintf(err, size, "capability %s: unknown", names[i]);
                return -EINVAL;
            }
            if (all)
                *(pass == 0 ? &add_all : &drop_all) = true;
            else
                *(pass == 0 ? &adds : &drops) |= 1ULL << bit;
        }
    }
    uint64_t caps = drop_all ? 0 : RT_CAPS_DEFAULT;
    if (add_all) /* every capability swarmd holds, as run-task --cap-add ALL */
        caps = rt_caps_all() & rt_caps_held();
    *ret = (caps | adds) & ~drops & rt_caps_all();
    return 0;
}

/* Start the task; any failure is reported (REJECTED or FAILED). */
static void task_start(wrk__exec *x, struct wtask *t, const Swarm__Task *m)
{
    const Swarm__TaskSpec *s = m->spec;
    char err[320];
    Swarm__TaskState fail_state = SWARM__TASK_STATE__TASK_REJECTED;
    _cleanup_free_ char **argv = NULL;
    _cleanup_free_ char **env = NULL;
    _cleanup_free_ struct rt_secret *secrets = NULL;
    struct rt_task_spec spec = {.id = t->id, .stdio = {-1, -1, -1}};

    t->phase = PH_DONE;
    if (!x->rt) {
        snprintf(err, sizeof(err), "runtime: %s", x->rt_error);
        goto fail;
    }
    if (!s || s->n_command == 0) {
        snprintf(err, sizeof(err), "a command is required");
        goto fail;
    }
    argv = calloc(s->n_command + 1, sizeof(*argv));
    env = calloc(s->n_env + 1, sizeof(*env));
    secrets = calloc(s->n_secrets ? s->n_secrets : 1, sizeof(*secrets));
    if (!argv || !env || !secrets) {
        snprintf(err, sizeof(err), "out of memory");
        fail_state = SWARM__TASK_STATE__TASK_FAILED;
        goto fail;
    }
    memcpy(argv, s->command, s->n_command * sizeof(*argv));
    if (s->n_env)
        memcpy(env, s->env, s->n_env * sizeof(*env));
    spec.argv = argv;
    spec.env = env;
    spec.workdir = s->workdir && s->workdir[0] ? s->workdir : NULL;
    spec.hostname = s->hostname && s->hostname[0] ? s->hostname : NULL;
    spec.rootfs = s->rootfs && s->rootfs[0] ? s->rootfs : NULL;
    spec.read_only = s->read_only;
    spec.network = s->network && strcmp(s->network, "host") == 0 ? RT_NET_HOST : RT_NET_NONE;
    spec.memory_limit = s->limit_memory;
    spec.nano_cpus = s->limit_nano_cpus;
    spec.pids_limit = s->limit_pids;
    if (s->user && s->user[0]) {
        if (parse_user(s->user, &spec.uid, &spec.gid) < 0) {
            snprintf(err, sizeof(err), "user %s: must be a numeric UID[:GID]", s->user);
            goto fail;
        }
        spec.user_set = true;
    }
    if (parse_caps(s, &spec.caps, err, sizeof(err)) < 0)
        goto fail;
    for (size_t i = 0; i < s->n_secrets; i++) {
        const Swarm__SecretRef *ref = s->secrets[i];
        const struct wsecret *held = ref->secret_id ? secret_find(x, ref->secret_id) : NULL;
        const char *label =
            ref->secret_name && ref->secret_name[0] ? ref->secret_name : ref->secret_id;
        if (!held) {
            snprintf(err, sizeof(err), "secret %s not available on this node",
                     label ? label : "(unnamed)");
            goto fail;
        }
        const char *target = ref->target && ref->target[0]             ? ref->target
                             : ref->secret_name && ref->secret_name[0] ? ref->secret_name
                                                                       : held->name;
        secrets[i] = (struct rt_secret){.name = target,
                                        .data = held->data,
                                        .len = held->len,
                                        .mode = ref->mode ? (mode_t)ref->mode : 0444,
                                        .uid = ref->uid,
                                        .gid = ref->gid};
    }
    spec.secrets = secrets;
    spec.n_secrets = s->n_secrets;

    queue_update(x, t->id, SWARM__TASK_STATE__TASK_STARTING, "starting", NULL, 0, 0);
    int r = rt_task_start(x->rt, &spec, &t->rt, err, sizeof(err));
    if (r < 0) {
        if (r != -EINVAL)
            fail_state = SWARM__TASK_STATE__TASK_FAILED;
        goto fail;
    }
    t->phase = PH_RUNNING;
    uv_timer_init(x->loop, &t->kill_timer);
    t->kill_timer.data = t;
    t->timer_init = true;
    t->handles++;
    x->handles_open++;
    r = uv_poll_init(x->loop, &t->poll, rt_task_pidfd(t->rt));
    if (r >= 0) {
        /* uv_poll_init made the pidfd non-blocking, and waitid on a non-blocking pidfd
         * answers EAGAIN instead of waiting: rt_task_cleanup's kill-and-wait needs it
         * blocking (epoll does not care) */
        int fd = rt_task_pidfd(t->rt), fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        t->poll.data = t;
        t->poll_init = true;
        t->handles++;
        x->handles_open++;
        r = uv_poll_start(&t->poll, UV_READABLE | UV_DISCONNECT, on_pidfd);
    }
    if (r < 0) {
        /* cannot watch it: do not leave it running unwatched */
        rt_task_cleanup(t->rt);
        t->rt = NULL;
        t->phase = PH_DONE;
        snprintf(err, sizeof(err), "cannot watch the task: %s", uv_strerror(r));
        queue_update(x, t->id, SWARM__TASK_STATE__TASK_FAILED, "failed", err, 0, 0);
        task_close_handles(t);
        return;
    }
    queue_update(x, t->id, SWARM__TASK_STATE__TASK_RUNNING, "started", NULL, 0, rt_task_pid(t->rt));
    return;
fail:
    queue_update(x, t->id, fail_state,
                 fail_state == SWARM__TASK_STATE__TASK_REJECTED ? "rejected" : "failed", err, 0, 0);
}

static int task_new(wrk__exec *x, const Swarm__Task *m, struct wtask **ret)
{
    struct wtask *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->x = x;
    snprintf(t->id, sizeof(t->id), "%s", m->id);
    const Swarm__TaskSpec *s = m->spec;
    if (s && s->n_secrets) {
        t->secret_ids = calloc(s->n_secrets, sizeof(*t->secret_ids));
        if (!t->secret_ids) {
            free(t);
            return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_secrets; i++) {
            if (!(t->secret_ids[i] =
                      strdup(s->secrets[i]->secret_id ? s->secrets[i]->secret_id : ""))) {
                t->n_secret_ids = i;
                task_free(t);
                return -ENOMEM;
            }
        }
        t->n_secret_ids = s->n_secrets;
    }
    t->next = x->tasks;
    x->tasks = t;
    *ret = t;
    return 0;
}

static bool desired_stopped(Swarm__TaskState s)
{
    return s >= SWARM__TASK_STATE__TASK_SHUTDOWN;
}

static void task_update(wrk__exec *x, const Swarm__Task *m)
{
    if (!m->id || !m->id[0])
        return;
    struct wtask *t = task_find(x, m->id);
    if (t) {
        t->seen = true;
        if (desired_stopped(m->desired_state))
            task_stop(t);
        return; /* started once, never again */
    }
    if (strlen(m->id) > TASK_ID_MAX || tombstoned(x, m->id))
        return;
    if (task_new(x, m, &t) < 0) {
        log_debug("executor: out of memory for task %s", m->id);
        return;
    }
    t->seen = true;
    t->phase = PH_DONE;
    if (m->state >= SWARM__TASK_STATE__TASK_COMPLETE)
        return; /* finished: the orchestrator decides what comes next */
    if (desired_stopped(m->desired_state)) {
        queue_update(x, t->id, SWARM__TASK_STATE__TASK_SHUTDOWN, "shutdown before it started", NULL,
                     0, 0);
        return;
    }
    if (m->state >= SWARM__TASK_STATE__TASK_STARTING) {
        /* this node started it before it restarted, and killed it as a leftover */
        queue_update(x, t->id, SWARM__TASK_STATE__TASK_FAILED, "failed",
                     "task: lost when the worker restarted", 0, 0);
        return;
    }
    task_start(x, t, m);
}

static void task_remove(wrk__exec *x, struct wtask *t)
{
    t->forget = true;
    task_stop(t);
    task_maybe_free(t);
}

/* ------------------------------------------------------------------ assignments */

static void deferred_free(struct deferred *d)
{
    sw_erase(d->buf, d->len);
    free(d->buf);
    free(d);
}

/* Keep m until the runtime is settled. A complete set replaces whatever came before it. */
static void defer(wrk__exec *x, const Swarm__SessionMessage *m)
{
    if (m->full) {
        while (x->deferred) {
            struct deferred *d = x->deferred;
            x->deferred = d->next;
            deferred_free(d);
        }
        x->deferred_tail = &x->deferred;
    }
    struct deferred *d = calloc(1, sizeof(*d));
    if (!d || proto_pack(&m->base, &d->buf, &d->len) < 0) {
        free(d);
        log_debug("executor: out of memory keeping an assignment for later");
        return;
    }
    *x->deferred_tail = d;
    x->deferred_tail = &d->next;
}

static void apply_now(wrk__exec *x, const Swarm__SessionMessage *m);

void wrk__exec_apply(wrk__exec *x, const Swarm__SessionMessage *m)
{
    if (x->closing)
        return;
    if (!x->settled) {
        defer(x, m);
        return;
    }
    apply_now(x, m);
}

static void apply_now(wrk__exec *x, const Swarm__SessionMessage *m)
{
    if (m->full) {
        for (struct wtask *t = x->tasks; t; t = t->next)
            t->seen = false;
        for (struct wsecret *s = x->secrets; s; s = s->next)
            s->seen = false;
    }
    /* secrets first: the tasks of the same message may need them */
    for (size_t i = 0; i < m->n_assignments; i++) {
        const Swarm__Assignment *a = m->assignments[i];
        if (!a->secret)
            continue;
        if (a->action == SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE) {
            struct wsecret *s = a->secret->id ? secret_find(x, a->secret->id) : NULL;
            if (s)
                s->removed = true;
        } else {
            secret_put(x, a->secret);
        }
    }
    if (m->full) {
        /* before the tasks start: a secret the set omits is not theirs to use */
        for (struct wsecret **p = &x->secrets; *p;) {
            struct wsecret *s = *p;
            if (!s->seen) {
                *p = s->next;
                secret_free(s);
            } else {
                p = &s->next;
            }
        }
    }
    for (size_t i = 0; i < m->n_assignments; i++) {
        const Swarm__Assignment *a = m->assignments[i];
        if (!a->task)
            continue;
        if (a->action == SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE) {
            struct wtask *t = a->task->id ? task_find(x, a->task->id) : NULL;
            if (t)
                task_remove(x, t);
        } else {
            task_update(x, a->task);
        }
    }
    if (m->full) {
        for (struct wtask *t = x->tasks, *next; t; t = next) {
            next = t->next;
            if (!t->seen)
                task_remove(x, t);
        }
    }
    secrets_gc(x);
}

/* ------------------------------------------------------------------ lifecycle */

/* On the thread pool: touches only what the loop leaves alone until settled. */
static void runtime_work(uv_work_t *w)
{
    wrk__exec *x = w->data;
    struct rt_config rc = {.run_dir = x->run_dir, .cgroup_parent = x->cgroup_parent};
    char err[256];
    int r = rt_runtime_create(&rc, &x->work_rt, err, sizeof(err));
    if (r < 0) {
        x->work_rt = NULL;
        snprintf(x->rt_error, sizeof(x->rt_error), "%s", err);
        return;
    }
    x->leftovers_err = rt_runtime_kill_leftovers(x->work_rt, &x->leftovers);
}

static void runtime_settled(uv_work_t *w, int status)
{
    wrk__exec *x = w->data;
    x->rt = x->work_rt;
    x->settled = true;
    x->handles_open--;
    if (!x->rt)
        log_debug("executor: no runtime: %s", x->rt_error);
    else if (x->leftovers_err < 0)
        log_debug("executor: leftovers of a previous run: %s", strerror(-x->leftovers_err));
    else if (x->leftovers)
        log_debug("executor: killed %u processes left by a previous run", x->leftovers);
    if (x->closing) {
        exec_maybe_closed(x);
        return;
    }
    while (x->deferred) {
        struct deferred *d = x->deferred;
        x->deferred = d->next;
        Swarm__SessionMessage *m = swarm__session_message__unpack(NULL, d->len, d->buf);
        deferred_free(d);
        if (!m)
            continue;
        apply_now(x, m);
        for (size_t i = 0; i < m->n_assignments; i++)
            if (m->assignments[i]->secret)
                sw_erase(m->assignments[i]->secret->data.data, m->assignments[i]->secret->data.len);
        swarm__session_message__free_unpacked(m, NULL);
    }
    x->deferred_tail = &x->deferred;
    if (x->settled_cb)
        x->settled_cb(x->userdata);
}

int wrk__exec_create(uv_loop_t *loop, const struct wrk__exec_config *cfg,
                     wrk__exec_notify_fn notify, void *userdata, wrk__exec **ret)
{
    wrk__exec *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->loop = loop;
    x->notify = notify;
    x->userdata = userdata;
    x->stop_grace_ms = cfg->stop_grace_ms ? cfg->stop_grace_ms : STOP_GRACE_DEFAULT_MS;
    if (cfg->run_dir && !(x->run_dir = strdup(cfg->run_dir))) {
        free(x);
        return -ENOMEM;
    }
    if (cfg->cgroup_parent && !(x->cgroup_parent = strdup(cfg->cgroup_parent))) {
        free(x->run_dir);
        free(x);
        return -ENOMEM;
    }
    x->settled_cb = cfg->settled;
    x->deferred_tail = &x->deferred;
    x->rt_work.data = x;
    x->handles_open++; /* the work: close waits for it */
    if (uv_queue_work(loop, &x->rt_work, runtime_work, runtime_settled) < 0) {
        runtime_work(&x->rt_work);
        runtime_settled(&x->rt_work, 0);
    }
    *ret = x;
    return 0;
}

bool wrk__exec_settled(const wrk__exec *x)
{
    return x->settled;
}

const char *wrk__exec_runtime_error(const wrk__exec *x)
{
    return !x->settled || x->rt ? NULL : x->rt_error;
}

unsigned wrk__exec_leftovers_killed(const wrk__exec *x)
{
    return x->settled ? x->leftovers : 0;
}

static void exec_free(wrk__exec *x)
{
    while (x->tasks) {
        struct wtask *t = x->tasks;
        x->tasks = t->next;
        task_free(t);
    }
    while (x->secrets) {
        struct wsecret *s = x->secrets;
        x->secrets = s->next;
        secret_free(s);
    }
    while (x->deferred) {
        struct deferred *d = x->deferred;
        x->deferred = d->next;
        deferred_free(d);
    }
    rt_runtime_free(x->rt);
    free(x->cgroup_parent);
    if (x->run_dir) {
        /* what rt_runtime_create made; each task's mounts lived in its own namespace */
        char root[4096];
        if (snprintf(root, sizeof(root), "%s/root", x->run_dir) < (int)sizeof(root))
            (void)rmdir(root);
        (void)rmdir(x->run_dir);
    }
    free(x->run_dir);
    free(x->tombstones);
    free(x->upd);
    free(x);
}

static void exec_maybe_closed(wrk__exec *x)
{
    if (x->handles_open > 0)
        return;
    void (*cb)(void *) = x->close_cb;
    void *ud = x->close_userdata;
    exec_free(x);
    if (cb)
        cb(ud);
}

void wrk__exec_close(wrk__exec *x, void (*cb)(void *userdata), void *userdata)
{
    if (!x) {
        if (cb)
            cb(userdata);
        return;
    }
    x->closing = true;
    x->close_cb = cb;
    x->close_userdata = userdata;
    for (struct wtask *t = x->tasks; t; t = t->next) {
        if (t->rt) {
            if (t->poll_init)
                uv_poll_stop(&t->poll);
            if (t->timer_init)
                uv_timer_stop(&t->kill_timer);
            rt_task_cleanup(t->rt); /* SIGKILL, reap, remove its cgroup */
            t->rt = NULL;
            t->phase = PH_DONE;
        }
        task_close_handles(t);
    }
    exec_maybe_closed(x);
}
