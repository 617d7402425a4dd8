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
    struct mgr_objs services, tasks, nodes; /* services and nodes in id order (store keys) */
    Task **grouped; /* every task, by service, slot (global: node), creation time */
    uint64_t now;
    bool again; /* something waits for time (a restart delay) */
};

static bool counts_attempt(const Service *svc, const Task *t);

static int id_cmp(const void *key, const void *elem)
{
    const char *id = key;
    const ProtobufCMessage *m = *(ProtobufCMessage *const *)elem;
    /* services and nodes both have their id as field 1 */
    const char *other = m->descriptor == &swarm__service__descriptor ? ((const Service *)m)->id
                                                                     : ((const Node *)m)->id;
    return strcmp(id, other);
}

static const Service *service_of(struct pass *p, const char *id)
{
    ProtobufCMessage **e =
        p->services.n ? bsearch(id, p->services.v, p->services.n, sizeof(*p->services.v), id_cmp)
                      : NULL;
    return e ? (const Service *)*e : NULL;
}

/* Index of the node with this id in p->nodes, or -1. */
static ssize_t node_index(struct pass *p, const char *id)
{
    if (!id[0] || !p->nodes.n)
        return -1;
    ProtobufCMessage **e = bsearch(id, p->nodes.v, p->nodes.n, sizeof(*p->nodes.v), id_cmp);
    return e ? (ssize_t)(e - p->nodes.v) : -1;
}

static Node *node_of(struct pass *p, const char *id)
{
    ssize_t i = node_index(p, id);
    return i >= 0 ? (Node *)p->nodes.v[i] : NULL;
}

static uint64_t created(const Task *t)
{
    return t->meta ? t->meta->created_at : 0;
}

/* The order of p->grouped: a service's tasks together, by slot (a global service's, slot 0,
 * by node), oldest first. */
static int group_cmp(const void *a, const void *b)
{
    const Task *x = *(Task *const *)a, *y = *(Task *const *)b;
    int c = strcmp(x->service_id, y->service_id);
    if (c)
        return c;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    if (x->slot == 0 && (c = strcmp(x->node_id, y->node_id)) != 0)
        return c;
    if (created(x) != created(y))
        return created(x) < created(y) ? -1 : 1;
    return strcmp(x->id, y->id);
}

static bool same_group(const Task *x, const Task *y)
{
    return strcmp(x->service_id, y->service_id) == 0 && x->slot == y->slot &&
           (x->slot != 0 || strcmp(x->node_id, y->node_id) == 0);
}

/* The range [*lo, *hi) of p->grouped holding this service's tasks. */
static void service_range(struct pass *p, const char *svc_id, size_t *lo, size_t *hi)
{
    size_t a = 0, b = p->tasks.n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (strcmp(p->grouped[mid]->service_id, svc_id) < 0)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    while (b < p->tasks.n && strcmp(p->grouped[b]->service_id, svc_id) == 0)
        b++;
    *hi = b < a ? a : b;
}

/* What a group of tasks (one slot, or one node of a global service) says. */
struct group {
    size_t end; /* one past its last task in p->grouped */
    Task *cur;  /* live: wanted running and not finished */
    Task *last; /* the newest */
    bool up;    /* a task running and wanted running */
    unsigned attempts;
};

static void group_at(struct pass *p, const Service *svc, size_t i, size_t hi, struct group *g)
{
    memset(g, 0, sizeof(*g));
    size_t k = i;
    for (; k < hi && same_group(p->grouped[i], p->grouped[k]); k++) {
        Task *t = p->grouped[k];
        if (live(t))
            g->cur = t;
        g->last = t; /* oldest first */
        g->up |= t->desired_state == ST(RUNNING) && t->state == ST(RUNNING);
        if (counts_attempt(svc, t))
            g->attempts++;
    }
    g->end = k;
}

static int put_task(struct pass *p, Task *t)
{
    if (t->meta)
        t->meta->updated_at = p->now;
    return mgr__batch_add(p->b, STORE_PUT, STORE_TASKS, t->id, &t->base);
}

/* (a copy that fails leaves the old text: a message, not state) */
static void set_str(char **field, const char *v)
{
    (void)mgr__set_str(field, v);
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

/* Will this finished task's slot get a new one, now or after the delay (restart policy,
 * attempts)? */
static bool will_restart(const Service *svc, const Task *last, unsigned attempts)
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
    return !(spec && spec->restart_max_attempts && attempts > spec->restart_max_attempts);
}

/* May this finished task's slot get a new one now? */
static bool may_restart(struct pass *p, const Service *svc, const Task *last, unsigned attempts)
{
    const Swarm__TaskSpec *spec = svc->task;
    if (!will_restart(svc, last, attempts))
        return false;
    if (!last || (last->desired_state > ST(RUNNING) && last->state == ST(SHUTDOWN)))
        return true;
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

/* The scheduler found no node for it: it waits for one, not for the update. */
static bool unschedulable(const Task *t)
{
    return t->state == ST(PENDING) && strncmp(t->message, "no suitable node", 16) == 0;
}

/* Does this slot (or node) hold up a rolling update, one slot at a time? A task of the
 * current spec on its way to running does; so does a slot whose old task is still stopping
 * or about to be replaced, or that has no task yet. A task waiting for a node that can take
 * it does not (the update would wait for good; it may be what fixes it), nor does a slot
 * whose task ended for good (restart policy). */
static bool group_blocks(const Service *svc, const struct group *g)
{
    if (g->up)
        return false;
    if (!g->cur) /* stopping, or about to be (re)started, unless it stays ended */
        return !g->last || !terminal(g->last) || will_restart(svc, g->last, g->attempts);
    if (g->cur->spec_version < svc->spec_version)
        return false;
    return !unschedulable(g->cur);
}

/* What to do with one slot (or one node of a global service). */
static int orchestrate_group(struct pass *p, const Service *svc, const struct group *g,
                             uint64_t slot, const char *node_id, bool *updating)
{
    Task *cur = g->cur, *last = g->last;
    int r = 0;
    if (cur && cur->spec_version < svc->spec_version) {
        if (cur->state < ST(ASSIGNED)) {
            /* never placed: nothing runs, replace it now (it may be the one the update fixes) */
            r = shut_down(p, cur, "replaced by a new version");
        } else if (!*updating) {
            r = shut_down(p, cur, "replaced by a new version");
            *updating = true;
        }
    } else if (!cur && last && !terminal(last) && last->desired_state > ST(RUNNING)) {
        /* still stopping; its replacement waits (one task per slot on a node) */
        if (!node_id && last->node_id[0] == '\0')
            r = new_task(p, svc, slot, NULL);
    } else if (!cur) {
        if (last && terminal(last) && last->desired_state <= ST(RUNNING)) {
            last->desired_state = ST(SHUTDOWN);
            r = put_task(p, last);
        }
        if (r >= 0 && may_restart(p, svc, last, g->attempts))
            r = new_task(p, svc, slot, node_id);
    }
    return r;
}

static int orchestrate_replicated(struct pass *p, const Service *svc)
{
    size_t lo, hi;
    service_range(p, svc->id, &lo, &hi);
    /* one slot at a time moves to a new spec: none while another slot is on its way */
    uint64_t settled = 0;
    bool updating = false;
    struct group g;
    for (size_t i = lo; i < hi; i = g.end) {
        group_at(p, svc, i, hi, &g);
        uint64_t slot = p->grouped[i]->slot;
        if (slot >= 1 && slot <= svc->replicas) {
            settled++;
            updating |= group_blocks(svc, &g);
        }
    }
    updating |= settled < svc->replicas; /* a slot with no task yet */
    uint64_t top = svc->replicas;
    if (hi > lo && p->grouped[hi - 1]->slot > top)
        top = p->grouped[hi - 1]->slot;
    size_t i = lo;
    while (i < hi && p->grouped[i]->slot == 0)
        i++; /* not a replicated task: not this pass's business */
    for (uint64_t slot = 1; slot <= top; slot++) {
        if (i < hi && p->grouped[i]->slot == slot) {
            group_at(p, svc, i, hi, &g);
            i = g.end;
        } else {
            memset(&g, 0, sizeof(g));
        }
        int r = 0;
        if (slot > svc->replicas) {
            if (g.cur)
                r = shut_down(p, g.cur, "scaled down");
        } else {
            r = orchestrate_group(p, svc, &g, slot, NULL, &updating);
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

/* The group of a global service's tasks on each node (p->nodes order), or an empty one. */
static struct group *global_groups(struct pass *p, const Service *svc)
{
    struct group *gs = calloc(p->nodes.n ? p->nodes.n : 1, sizeof(*gs));
    if (!gs)
        return NULL;
    size_t lo, hi;
    service_range(p, svc->id, &lo, &hi);
    struct group g;
    for (size_t i = lo; i < hi; i = g.end) {
        group_at(p, svc, i, hi, &g);
        ssize_t n = p->grouped[i]->slot == 0 ? node_index(p, p->grouped[i]->node_id) : -1;
        if (n >= 0)
            gs[n] = g;
    }
    return gs;
}

static int orchestrate_global(struct pass *p, const Service *svc)
{
    struct group *gs = global_groups(p, svc);
    if (!gs)
        return -ENOMEM;
    bool updating = false; /* as for replicated: one node at a time */
    for (size_t n = 0; n < p->nodes.n && !updating; n++)
        updating = global_eligible((Node *)p->nodes.v[n], svc) && group_blocks(svc, &gs[n]);
    int r = 0;
    for (size_t n = 0; n < p->nodes.n && r >= 0; n++) {
        const Node *node = (Node *)p->nodes.v[n];
        if (!global_eligible(node, svc)) {
            if (gs[n].cur)
                r = shut_down(p, gs[n].cur, "node not eligible");
        } else if (gs[n].cur || !gs[n].last || terminal(gs[n].last)) {
            r = orchestrate_group(p, svc, &gs[n], 0, node->id, &updating);
        }
    }
    free(gs);
    return r;
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
    size_t end = 0;
    for (size_t i = 0; i < p->tasks.n; i++) {
        if (i >= end)
            for (end = i + 1; end < p->tasks.n && same_group(p->grouped[i], p->grouped[end]);)
                end++;
        Task *t = p->grouped[i];
        const Service *svc = service_of(p, t->service_id);
        if (!terminal(t) || t->desired_state <= ST(RUNNING) || !svc)
            continue;
        /* the runs that count toward max attempts stay (at most max + 1 of them), or the
         * count would never get past the history limit */
        if (svc->task && svc->task->restart_max_attempts && counts_attempt(svc, t))
            continue;
        size_t k = i + 1; /* oldest first: the newer ones follow (equal times are not newer) */
        while (k < end && created(p->grouped[k]) == created(t))
            k++;
        if (end - k >= MGR_TASK_HISTORY_DEFAULT) {
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
    unsigned of_service; /* live tasks of the service being placed */
    enum {
        FIT = 0,
        NOT_READY,
        NOT_ACTIVE,
        NO_RUNTIME,
        CONSTRAINED,
    } filter; /* for the spec being placed */
};

/* Why a node cannot take any task of this spec (its resources aside). */
static int node_filter(struct pass *p, const Node *node, const Swarm__TaskSpec *spec)
{
    /* Ready, with an agent in session to run it */
    if (node->state != SWARM__NODE_STATE__NODE_READY ||
        !mgr__dispatcher_has_session(p->m, node->id))
        return NOT_READY;
    if (!node_usable(node))
        return NOT_ACTIVE;
    if (node->runtime_error[0])
        return NO_RUNTIME;
    if (!constraints_ok(node, spec))
        return CONSTRAINED;
    return FIT;
}

/* Place one pending task: a node that passes the filters with room for its reservations,
 * with the fewest tasks of its service, then the fewest tasks. */
static int place(struct pass *p, struct load *load, Task *t)
{
    const Swarm__TaskSpec *spec = t->spec;
    int64_t mem = spec ? spec->reserve_memory : 0, cpu = spec ? spec->reserve_nano_cpus : 0;
    unsigned count[CONSTRAINED + 1] = {0}, no_memory = 0, no_cpu = 0;
    ssize_t best = -1;
    size_t from = 0, to = p->nodes.n;
    if (t->node_id[0]) {
        /* global tasks are bound to their node */
        ssize_t n = node_index(p, t->node_id);
        from = n >= 0 ? (size_t)n : 0;
        to = n >= 0 ? (size_t)n + 1 : 0;
    }
    for (size_t n = from; n < to; n++) {
        const Node *node = (Node *)p->nodes.v[n];
        struct load *l = &load[n];
        if (l->filter != FIT) {
            count[l->filter]++;
            continue;
        }
        int64_t cap_mem = node->resources ? node->resources->memory_bytes : 0;
        int64_t cap_cpu = node->resources ? node->resources->nano_cpus : 0;
        if (mem && l->memory + mem > cap_mem) {
            no_memory++;
            continue;
        }
        if (cpu && l->cpus + cpu > cap_cpu) {
            no_cpu++;
            continue;
        }
        if (best < 0 || l->of_service < load[best].of_service ||
            (l->of_service == load[best].of_service && l->tasks < load[best].tasks))
            best = (ssize_t)n;
    }
    if (best >= 0) {
        const Node *node = (Node *)p->nodes.v[best];
        set_str(&t->node_id, node->id);
        t->state = ST(ASSIGNED);
        t->state_at = p->now;
        set_str(&t->message, "scheduled");
        load[best].tasks++;
        load[best].of_service++;
        load[best].memory += mem;
        load[best].cpus += cpu;
        return put_task(p, t);
    }
    char why[240], extra[48] = "";
    if (count[NO_RUNTIME])
        snprintf(extra, sizeof(extra), ", %u cannot run tasks", count[NO_RUNTIME]);
    snprintf(why, sizeof(why),
             "no suitable node (%zu node%s: %u not ready, %u not active, %u fail "
             "constraints, %u without memory, %u without CPU%s)",
             p->nodes.n, p->nodes.n == 1 ? "" : "s", count[NOT_READY], count[NOT_ACTIVE],
             count[CONSTRAINED], no_memory, no_cpu, extra);
    if (strcmp(t->message, why) != 0 || t->state != ST(PENDING)) {
        t->state = ST(PENDING);
        set_str(&t->message, why);
        return put_task(p, t);
    }
    return 0;
}

static int schedule(struct pass *p)
{
    struct load *load = calloc(p->nodes.n ? p->nodes.n : 1, sizeof(*load));
    if (!load)
        return -ENOMEM;
    for (size_t i = 0; i < p->tasks.n; i++) {
        const Task *t = (Task *)p->tasks.v[i];
        /* placed ones: a pending global task is bound to its node but holds nothing there */
        ssize_t n = live(t) && t->state >= ST(ASSIGNED) ? node_index(p, t->node_id) : -1;
        if (n < 0)
            continue;
        load[n].tasks++;
        if (t->spec) {
            load[n].memory += t->spec->reserve_memory;
            load[n].cpus += t->spec->reserve_nano_cpus;
        }
    }
    /* pending tasks service by service: the per-node counts and filters are computed once
     * per service (and spec version) */
    int r = 0;
    const char *svc_id = NULL;
    uint64_t spec_version = 0;
    bool filtered = false;
    for (size_t i = 0; i < p->tasks.n && r >= 0; i++) {
        Task *t = p->grouped[i];
        if (!live(t) || t->state > ST(PENDING))
            continue;
        if (!svc_id || strcmp(svc_id, t->service_id) != 0) {
            svc_id = t->service_id;
            filtered = false;
            for (size_t n = 0; n < p->nodes.n; n++)
                load[n].of_service = 0;
            size_t lo, hi;
            service_range(p, svc_id, &lo, &hi);
            for (size_t k = lo; k < hi; k++) {
                const Task *o = p->grouped[k];
                ssize_t n = live(o) && o->state >= ST(ASSIGNED) ? node_index(p, o->node_id) : -1;
                if (n >= 0)
                    load[n].of_service++;
            }
        }
        if (!filtered || t->spec_version != spec_version) {
            for (size_t n = 0; n < p->nodes.n; n++)
                load[n].filter = node_filter(p, (Node *)p->nodes.v[n], t->spec);
            spec_version = t->spec_version;
            filtered = true;
        }
        r = place(p, load, t);
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
    p.grouped = malloc((p.tasks.n ? p.tasks.n : 1) * sizeof(*p.grouped));
    if (!p.grouped) {
        r = -ENOMEM;
        goto out;
    }
    if (p.tasks.n) {
        memcpy(p.grouped, p.tasks.v, p.tasks.n * sizeof(*p.grouped));
        qsort(p.grouped, p.tasks.n, sizeof(*p.grouped), group_cmp);
    }
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
    free(p.grouped);
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
    mgr__names_event(m, ev);
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
