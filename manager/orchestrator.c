/* The orchestrator and the scheduler, as one reconciliation pass run through the write
 * queue (so it always reads committed state and its writes never overwrite a status a node
 * just reported). A pass is queued after any change to services, tasks or nodes, and every
 * second for restart delays.
 *
 * Orchestrator: replicated services keep one live task per slot 1..replicas; global
 * services one per eligible node; a finished task is replaced per the restart policy; a
 * changed spec replaces tasks one at a time; tasks of removed services, drained or down
 * nodes are shut down; history is kept to the last MGR_TASK_HISTORY_DEFAULT per slot (plus
 * the runs of the current spec that count toward a restart_max_attempts).
 * Scheduler: a pending task goes to a Ready, Active node that meets its constraints and
 * reservations, with the fewest tasks of its service, then the fewest tasks overall. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"

#define TICK_MS 1000

typedef Swarm__Task Task;
typedef Swarm__Service Service;
typedef Swarm__Node Node;

#define ST(x) SWARM__TASK_STATE__TASK_##x

static bool terminal(const Task *t)
{
    return t->state >= ST(COMPLETE);
}

/* A task that holds (or will hold) its slot: wanted running and not finished. */
static bool live(const Task *t)
{
    return t->desired_state <= ST(RUNNING) && !terminal(t);
}

struct pass {
    struct mgr *m;
    struct mgr_batch *b;
    struct mgr_objs services, tasks, nodes;
    uint64_t now;
    bool again; /* something waits for time (a restart delay) */
};

static const Service *service_of(struct pass *p, const char *id)
{
    for (size_t i = 0; i < p->services.n; i++)
        if (strcmp(((Service *)p->services.v[i])->id, id) == 0)
            return (Service *)p->services.v[i];
    return NULL;
}

static Node *node_of(struct pass *p, const char *id)
{
    for (size_t i = 0; i < p->nodes.n; i++)
        if (strcmp(((Node *)p->nodes.v[i])->id, id) == 0)
            return (Node *)p->nodes.v[i];
    return NULL;
}

static int put_task(struct pass *p, Task *t)
{
    if (t->meta)
        t->meta->updated_at = p->now;
    return mgr__batch_add(p->b, STORE_PUT, STORE_TASKS, t->id, &t->base);
}

static void set_str(char **field, const char *v)
{
    char *n = strdup(v);
    if (!n)
        return;
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = n;
}

static int shut_down(struct pass *p, Task *t, const char *why)
{
    t->desired_state = ST(SHUTDOWN);
    if (why && !terminal(t) && (!t->node_id[0] || t->state < ST(ASSIGNED))) {
        /* never reached a node: nothing runs, it is done */
        t->state = ST(SHUTDOWN);
        t->state_at = p->now;
        set_str(&t->message, why);
    }
    return put_task(p, t);
}

static int new_task(struct pass *p, const Service *svc, uint64_t slot, const char *node_id)
{
    char id[SW_ID_LEN + 1];
    if (sw_id_generate(id) < 0)
        return -EIO;
    Task t = SWARM__TASK__INIT;
    Swarm__Meta meta = SWARM__META__INIT;
    meta.created_at = meta.updated_at = p->now;
    t.id = id;
    t.meta = &meta;
    t.service_id = svc->id;
    t.slot = slot;
    t.node_id = (char *)(node_id ? node_id : "");
    t.spec = svc->task;
    t.spec_version = svc->spec_version;
    t.desired_state = ST(RUNNING);
    t.state = ST(PENDING);
    t.state_at = p->now;
    t.message = (char *)"created";
    return mgr__batch_add(p->b, STORE_CREATE, STORE_TASKS, id, &t.base);
}

/* A run that counts toward restart_max_attempts: one of the current spec that ended by
 * itself (completed, failed or rejected; not shut down by us, not lost with its node), as
 * Docker counts restarts per slot and starts afresh with a new spec. */
static bool counts_attempt(const Service *svc, const Task *t)
{
    return t->spec_version == svc->spec_version &&
           (t->state == ST(COMPLETE) || t->state == ST(FAILED) || t->state == ST(REJECTED));
}

/* May this finished task's slot get a new one (restart policy, delay, attempts)? */
static bool may_restart(struct pass *p, const Service *svc, const Task *last, unsigned attempts)
{
    const Swarm__TaskSpec *spec = svc->task;
    const char *cond = spec && spec->restart_condition[0] ? spec->restart_condition : "any";
    if (!last)
        return true;
    if (last->desired_state > ST(RUNNING) && last->state == ST(SHUTDOWN))
        return true; /* shut down by us (update, drain, scale): replace */
    if (strcmp(cond, "none") == 0)
        return false;
    bool failed =
        last->state == ST(FAILED) || last->state == ST(REJECTED) || last->state == ST(ORPHANED);
    if (strcmp(cond, "on-failure") == 0 && !failed)
        return false;
    /* Docker's meaning: at most N restarts after the first run */
    if (spec && spec->restart_max_attempts && attempts > spec->restart_max_attempts)
        return false;
    uint64_t delay = spec ? spec->restart_delay_ns : 0;
    if (delay && p->now - last->state_at < delay) {
        p->again = true;
        return false;
    }
    return true;
}

static bool node_usable(const Node *n)
{
    return n->state == SWARM__NODE_STATE__NODE_READY &&
           n->availability == SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE;
}

static const char *label_of(const Node *n, const char *key)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (strcmp(n->labels[i]->key, key) == 0)
            return n->labels[i]->value;
    return NULL;
}

bool mgr__constraint_ok(const Swarm__Node *n, const char *c)
{
    const char *op = strstr(c, "==");
    bool eq = true;
    if (!op) {
        op = strstr(c, "!=");
        eq = false;
    }
    if (!op)
        return false;
    char key[160], val[1024];
    while (*c == ' ')
        c++;
    size_t klen = (size_t)(op - c);
    while (klen > 0 && c[klen - 1] == ' ')
        klen--;
    if (klen >= sizeof(key))
        return false;
    memcpy(key, c, klen);
    key[klen] = '\0';
    const char *v = op + 2;
    while (*v == ' ')
        v++;
    size_t vlen = strlen(v);
    while (vlen > 0 && v[vlen - 1] == ' ')
        vlen--;
    if (vlen >= sizeof(val))
        return false;
    memcpy(val, v, vlen);
    val[vlen] = '\0';
    const char *have = NULL;
    if (!strcmp(key, "node.id"))
        have = n->id;
    else if (!strcmp(key, "node.hostname"))
        have = n->hostname;
    else if (!strcmp(key, "node.role"))
        have = n->role == SWARM__NODE_ROLE__ROLE_MANAGER ? "manager" : "worker";
    else if (!strncmp(key, "node.labels.", 12))
        have = label_of(n, key + 12);
    bool match = have && strcmp(have, val) == 0;
    return eq ? match : !match;
}

static bool constraints_ok(const Node *n, const Swarm__TaskSpec *spec)
{
    for (size_t i = 0; spec && i < spec->n_constraints; i++)
        if (!mgr__constraint_ok(n, spec->constraints[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------------ orchestrator */

/* Has this slot (or, for a global service, this node) a task running and wanted running? */
static bool up(struct pass *p, const Service *svc, uint64_t slot, const char *node_id)
{
    for (size_t i = 0; i < p->tasks.n; i++) {
        const Task *t = (Task *)p->tasks.v[i];
        if (strcmp(t->service_id, svc->id) == 0 &&
            (node_id ? strcmp(t->node_id, node_id) == 0 : t->slot == slot) &&
            t->desired_state == ST(RUNNING) && t->state == ST(RUNNING))
            return true;
    }
    return false;
}

static int orchestrate_replicated(struct pass *p, const Service *svc)
{
    uint64_t top = svc->replicas;
    for (size_t i = 0; i < p->tasks.n; i++) {
        Task *t = (Task *)p->tasks.v[i];
        if (strcmp(t->service_id, svc->id) == 0 && t->slot > top)
            top = t->slot;
    }
    /* one slot at a time moves to a new spec: none while any slot is not running */
    bool updating = false;
    for (uint64_t slot = 1; slot <= svc->replicas && !updating; slot++)
        updating = !up(p, svc, slot, NULL);
    for (uint64_t slot = 1; slot <= top; slot++) {
        Task *cur = NULL, *last = NULL;
        unsigned attempts = 0;
        for (size_t i = 0; i < p->tasks.n; i++) {
            Task *t = (Task *)p->tasks.v[i];
            if (strcmp(t->service_id, svc->id) != 0 || t->slot != slot)
                continue;
            if (live(t))
                cur = t;
            if (!last || t->meta->created_at > last->meta->created_at)
                last = t;
            if (counts_attempt(svc, t))
                attempts++;
        }
        int r = 0;
        if (slot > svc->replicas) {
            if (cur)
                r = shut_down(p, cur, "scaled down");
        } else if (cur && cur->spec_version < svc->spec_version) {
            if (!updating) {
                r = shut_down(p, cur, "replaced by a new version");
                updating = true;
            }
        } else if (!cur && last && !terminal(last) && last->desired_state > ST(RUNNING)) {
            /* still stopping; its replacement waits (one task per slot on a node) */
            if (last->node_id[0] == '\0')
                r = new_task(p, svc, slot, NULL);
        } else if (!cur) {
            if (last && terminal(last) && last->desired_state <= ST(RUNNING)) {
                last->desired_state = ST(SHUTDOWN);
                r = put_task(p, last);
            }
            if (r >= 0 && may_restart(p, svc, last, attempts))
                r = new_task(p, svc, slot, NULL);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static bool global_eligible(const Node *node, const Service *svc)
{
    return node->availability == SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE &&
           node->state != SWARM__NODE_STATE__NODE_DOWN && constraints_ok(node, svc->task);
}

static int orchestrate_global(struct pass *p, const Service *svc)
{
    bool updating = false; /* as for replicated: one node at a time */
    for (size_t n = 0; n < p->nodes.n && !updating; n++) {
        const Node *node = (Node *)p->nodes.v[n];
        updating = global_eligible(node, svc) && !up(p, svc, 0, node->id);
    }
    for (size_t n = 0; n < p->nodes.n; n++) {
        const Node *node = (Node *)p->nodes.v[n];
        bool eligible = global_eligible(node, svc);
        Task *cur = NULL, *last = NULL;
        unsigned attempts = 0;
        for (size_t i = 0; i < p->tasks.n; i++) {
            Task *t = (Task *)p->tasks.v[i];
            if (strcmp(t->service_id, svc->id) != 0 || strcmp(t->node_id, node->id) != 0)
                continue;
            if (live(t))
                cur = t;
            if (!last || t->meta->created_at > last->meta->created_at)
                last = t;
            if (counts_attempt(svc, t))
                attempts++;
        }
        int r = 0;
        if (!eligible) {
            if (cur)
                r = shut_down(p, cur, "node not eligible");
        } else if (cur && cur->spec_version < svc->spec_version) {
            if (!updating) {
                r = shut_down(p, cur, "replaced by a new version");
                updating = true;
            }
        } else if (!cur && !(last && !terminal(last))) {
            if (last && terminal(last) && last->desired_state <= ST(RUNNING)) {
                last->desired_state = ST(SHUTDOWN);
                r = put_task(p, last);
            }
            if (r >= 0 && may_restart(p, svc, last, attempts))
                r = new_task(p, svc, 0, node->id);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Tasks of removed services, on drained or down nodes; history beyond the limit. */
static int orchestrate_tasks(struct pass *p)
{
    for (size_t i = 0; i < p->tasks.n; i++) {
        Task *t = (Task *)p->tasks.v[i];
        const Service *svc = service_of(p, t->service_id);
        const Node *n = t->node_id[0] ? node_of(p, t->node_id) : NULL;
        int r = 0;
        if (!svc) {
            if (live(t))
                r = shut_down(p, t, "service removed");
            else if (terminal(t) || !t->node_id[0] || !n ||
                     n->state == SWARM__NODE_STATE__NODE_DOWN)
                r = mgr__batch_add(p->b, STORE_DELETE, STORE_TASKS, t->id, NULL);
        } else if (!terminal(t) && t->node_id[0] && t->state >= ST(ASSIGNED) &&
                   (!n || n->state == SWARM__NODE_STATE__NODE_DOWN)) {
            /* also one being stopped: its node will not say it stopped, its slot moves on */
            t->desired_state = ST(SHUTDOWN);
            t->state = ST(ORPHANED);
            t->state_at = p->now;
            set_str(&t->message, n ? "node down" : "node removed");
            r = put_task(p, t);
        } else if (live(t) && t->node_id[0] && !n) {
            r = shut_down(p, t, "node removed");
        } else if (live(t) && n && !svc->global &&
                   n->availability == SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN) {
            r = shut_down(p, t, "node drained");
        }
        if (r < 0)
            return r;
    }
    /* history: per service slot (or node, for global), keep the newest few finished */
    for (size_t i = 0; i < p->tasks.n; i++) {
        Task *t = (Task *)p->tasks.v[i];
        const Service *svc = service_of(p, t->service_id);
        if (!terminal(t) || t->desired_state <= ST(RUNNING) || !svc)
            continue;
        /* the runs that count toward max attempts stay (at most max + 1 of them), or the
         * count would never get past the history limit */
        if (svc->task && svc->task->restart_max_attempts && counts_attempt(svc, t))
            continue;
        unsigned newer = 0;
        for (size_t j = 0; j < p->tasks.n; j++) {
            Task *o = (Task *)p->tasks.v[j];
            bool same_slot = strcmp(o->service_id, t->service_id) == 0 &&
                             (t->slot ? o->slot == t->slot : strcmp(o->node_id, t->node_id) == 0);
            if (o != t && same_slot && o->meta->created_at > t->meta->created_at)
                newer++;
        }
        if (newer >= MGR_TASK_HISTORY_DEFAULT) {
            int r = mgr__batch_add(p->b, STORE_DELETE, STORE_TASKS, t->id, NULL);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ scheduler */

struct load {
    int64_t memory, cpus; /* reserved */
    unsigned tasks;
};

static int schedule(struct pass *p)
{
    struct load *load = calloc(p->nodes.n ? p->nodes.n : 1, sizeof(*load));
    if (!load)
        return -ENOMEM;
    for (size_t i = 0; i < p->tasks.n; i++) {
        const Task *t = (Task *)p->tasks.v[i];
        if (!live(t) || !t->node_id[0])
            continue;
        for (size_t n = 0; n < p->nodes.n; n++)
            if (!strcmp(((Node *)p->nodes.v[n])->id, t->node_id)) {
                load[n].tasks++;
                if (t->spec) {
                    load[n].memory += t->spec->reserve_memory;
                    load[n].cpus += t->spec->reserve_nano_cpus;
                }
            }
    }
    int r = 0;
    for (size_t i = 0; i < p->tasks.n && r >= 0; i++) {
        Task *t = (Task *)p->tasks.v[i];
        if (!live(t) || t->state > ST(PENDING))
            continue;
        const Swarm__TaskSpec *spec = t->spec;
        int64_t mem = spec ? spec->reserve_memory : 0, cpu = spec ? spec->reserve_nano_cpus : 0;
        unsigned not_ready = 0, drained = 0, constrained = 0, no_memory = 0, no_cpu = 0,
                 no_runtime = 0;
        ssize_t best = -1;
        unsigned best_service = 0;
        for (size_t n = 0; n < p->nodes.n; n++) {
            const Node *node = (Node *)p->nodes.v[n];
            if (t->node_id[0] && strcmp(t->node_id, node->id) != 0)
                continue; /* global tasks are bound to their node */
            /* Ready, with an agent in session to run it (a manager runs none yet) */
            if (node->state != SWARM__NODE_STATE__NODE_READY ||
                !mgr__dispatcher_has_session(p->m, node->id)) {
                not_ready++;
                continue;
            }
            if (!node_usable(node)) {
                drained++;
                continue;
            }
            if (node->runtime_error[0]) {
                no_runtime++;
                continue;
            }
            if (!constraints_ok(node, spec)) {
                constrained++;
                continue;
            }
            int64_t cap_mem = node->resources ? node->resources->memory_bytes : 0;
            int64_t cap_cpu = node->resources ? node->resources->nano_cpus : 0;
            if (mem && load[n].memory + mem > cap_mem) {
                no_memory++;
                continue;
            }
            if (cpu && load[n].cpus + cpu > cap_cpu) {
                no_cpu++;
                continue;
            }
            unsigned of_service = 0;
            for (size_t j = 0; j < p->tasks.n; j++) {
                const Task *o = (Task *)p->tasks.v[j];
                if (live(o) && !strcmp(o->node_id, node->id) &&
                    !strcmp(o->service_id, t->service_id))
                    of_service++;
            }
            if (best < 0 || of_service < best_service ||
                (of_service == best_service && load[n].tasks < load[best].tasks)) {
                best = (ssize_t)n;
                best_service = of_service;
            }
        }
        if (best >= 0) {
            const Node *node = (Node *)p->nodes.v[best];
            set_str(&t->node_id, node->id);
            t->state = ST(ASSIGNED);
            t->state_at = p->now;
            set_str(&t->message, "scheduled");
            load[best].tasks++;
            load[best].memory += mem;
            load[best].cpus += cpu;
            r = put_task(p, t);
        } else {
            char why[240], extra[48] = "";
            if (no_runtime)
                snprintf(extra, sizeof(extra), ", %u cannot run tasks", no_runtime);
            snprintf(why, sizeof(why),
                     "no suitable node (%zu node%s: %u not ready, %u not active, %u fail "
                     "constraints, %u without memory, %u without CPU%s)",
                     p->nodes.n, p->nodes.n == 1 ? "" : "s", not_ready, drained, constrained,
                     no_memory, no_cpu, extra);
            if (strcmp(t->message, why) != 0 || t->state != ST(PENDING)) {
                t->state = ST(PENDING);
                set_str(&t->message, why);
                r = put_task(p, t);
            }
        }
    }
    free(load);
    return r;
}

/* ------------------------------------------------------------------ the pass */

static int reconcile(struct mgr *m, struct mgr_batch *b, void *userdata)
{
    struct pass p = {.m = m, .b = b, .now = sw_now_realtime_ns()};
    int r;
    m->reconcile_queued = false;
    if ((r = mgr__list(m, STORE_SERVICES, &swarm__service__descriptor, &p.services)) < 0 ||
        (r = mgr__list(m, STORE_TASKS, &swarm__task__descriptor, &p.tasks)) < 0 ||
        (r = mgr__list(m, STORE_NODES, &swarm__node__descriptor, &p.nodes)) < 0)
        goto out;
    if ((r = orchestrate_tasks(&p)) < 0)
        goto out;
    for (size_t i = 0; i < p.services.n && r >= 0; i++) {
        const Service *svc = (Service *)p.services.v[i];
        r = svc->global ? orchestrate_global(&p, svc) : orchestrate_replicated(&p, svc);
    }
    if (r < 0)
        goto out;
    /* the tasks created above get placed in the next pass, once committed */
    r = schedule(&p);
out:
    mgr__objs_free(&p.services);
    mgr__objs_free(&p.tasks);
    mgr__objs_free(&p.nodes);
    if (r < 0)
        log_warn_errno(r, "reconciliation pass failed");
    return r;
}

static void reconciled(struct mgr *m, int status, void *userdata)
{
    if (status < 0 && status != -ECANCELED)
        log_warn_errno(status, "reconciliation not committed");
}

static void queue_pass(struct mgr *m)
{
    if (m->reconcile_queued || m->stopping || !m->serving || !mgr__is_leader(m))
        return;
    m->reconcile_queued = true;
    if (mgr__batch_update(m, reconcile, reconciled, NULL) < 0)
        m->reconcile_queued = false;
}

static void kick_cb(uv_timer_t *t)
{
    queue_pass(t->data);
}

/* A store change: look again soon (never from inside the raft apply itself). */
static void on_store_event(const struct store_event *ev, void *userdata)
{
    struct mgr *m = userdata;
    if (ev->table == STORE_SERVICES || ev->table == STORE_TASKS || ev->table == STORE_NODES)
        if (!m->stopping && !uv_is_active((uv_handle_t *)&m->kick_timer))
            uv_timer_start(&m->kick_timer, kick_cb, 0, 0);
    mgr__dispatcher_store_event(m, ev);
}

static void tick_cb(uv_timer_t *t)
{
    queue_pass(t->data);
}

int mgr__orchestrator_start(struct mgr *m)
{
    int r = store_watch_add(m->store, on_store_event, m, &m->watch);
    if (r < 0)
        return r;
    uv_timer_start(&m->tick_timer, tick_cb, TICK_MS, TICK_MS);
    queue_pass(m);
    return 0;
}

void mgr__orchestrator_stop(struct mgr *m)
{
    uv_timer_stop(&m->tick_timer);
    uv_timer_stop(&m->kick_timer);
    if (m->watch) {
        store_watch_remove(m->watch);
        m->watch = NULL;
    }
}
