/* manager/ orchestrator and scheduler: node filters, constraints, reservations, pending
 * tasks placed once a node can take them, spread, scaling, restart policies, rolling
 * updates, history, service removal and global services, driven through the control API
 * and fake nodes in session with the in-process manager. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tests.h"

#define GIB (1024LL * 1024 * 1024)
#define CPU 1000000000LL
#define ST(x) SWARM__TASK_STATE__TASK_##x

static bool is_live(const Swarm__Task *t)
{
    return t->desired_state <= ST(RUNNING) && t->state < ST(COMPLETE);
}

/* Live tasks of a service per node: counts[i] for nodes[i]; returns the live total. */
static size_t live_per_node(struct mt *t, const char *svc, struct mt_node **nodes, size_t nn,
                            size_t *counts)
{
    struct mgr_objs o;
    size_t total = 0;
    memset(counts, 0, nn * sizeof(*counts));
    mt_service_tasks(t, svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (!is_live(task))
            continue;
        total++;
        for (size_t k = 0; k < nn; k++)
            if (strcmp(task->node_id, nodes[k]->id) == 0)
                counts[k]++;
    }
    mgr__objs_free(&o);
    return total;
}

/* A service's live tasks all assigned (state >= ASSIGNED), n of them. */
struct placed_want {
    const char *svc;
    size_t n;
};

static bool all_placed(struct mt *t, void *ud)
{
    struct placed_want *w = ud;
    struct mt_count c;
    mt_count_tasks(t, w->svc, &c);
    return c.live == w->n && c.pending == 0;
}

static void wait_placed(struct mt *t, const char *svc, size_t n)
{
    struct placed_want w = {svc, n};
    if (!mt_wait_for(t, all_placed, &w, MT_WAIT_MS)) {
        struct mt_count c;
        mt_count_tasks(t, svc, &c);
        fail_msg("service %s: %zu live, %zu pending; wanted %zu placed", svc, c.live, c.pending, n);
    }
}

/* n live tasks of the service still pending, each with a message holding needle. */
struct pending_want {
    const char *svc;
    size_t n;
    const char *needle;
};

static bool pending_with(struct mt *t, void *ud)
{
    struct pending_want *w = ud;
    struct mgr_objs o;
    size_t k = 0;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (is_live(task) && task->state == ST(PENDING) && strstr(task->message, w->needle))
            k++;
    }
    mgr__objs_free(&o);
    return k == w->n;
}

static void wait_pending(struct mt *t, const char *svc, size_t n, const char *needle)
{
    struct pending_want w = {svc, n, needle};
    if (!mt_wait_for(t, pending_with, &w, MT_WAIT_MS)) {
        struct mgr_objs o;
        mt_service_tasks(t, svc, &o);
        for (size_t i = 0; i < o.n; i++) {
            const Swarm__Task *task = (const Swarm__Task *)o.v[i];
            print_error("task slot %llu state %d node '%s': %s\n", (unsigned long long)task->slot,
                        task->state, task->node_id, task->message);
        }
        mgr__objs_free(&o);
        fail_msg("service %s: wanted %zu pending with '%s'", svc, n, needle);
    }
}

/* All live tasks of svc on node (and n of them). */
static void assert_all_on(struct mt *t, const char *svc, const struct mt_node *node, size_t n)
{
    struct mgr_objs o;
    size_t k = 0;
    mt_service_tasks(t, svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (!is_live(task))
            continue;
        k++;
        if (strcmp(task->node_id, node->id) != 0)
            fail_msg("a task of %s is on '%s', not on %s", svc, task->node_id, node->hostname);
    }
    mgr__objs_free(&o);
    assert_int_equal(k, n);
}

static void label_add(struct mt *t, const char *node_id, const char *key, const char *value)
{
    Swarm__Label l = SWARM__LABEL__INIT;
    Swarm__Label *lv[] = {&l};
    l.key = (char *)key;
    l.value = (char *)value;
    Swarm__UpdateNodeRequest req = SWARM__UPDATE_NODE_REQUEST__INIT;
    req.id = (char *)node_id;
    req.label_add = lv;
    req.n_label_add = 1;
    mt_node_update(t, &req);
}

/* The manager's own node has no agent here; drain it so it plays no part. */
static void start(struct mt *t)
{
    mt_start_ok(t, true);
    mt_node_availability(t, mgr_node_id(t->m), SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
}

/* ------------------------------------------------------------------ constraints */

static void test_constraint_match(void **state)
{
    Swarm__Label zone = SWARM__LABEL__INIT, disk = SWARM__LABEL__INIT;
    zone.key = "zone";
    zone.value = "east";
    disk.key = "disk";
    disk.value = "ssd";
    Swarm__Label *labels[] = {&zone, &disk};
    Swarm__Node n = SWARM__NODE__INIT;
    n.id = "abcdef";
    n.hostname = "h1";
    n.role = SWARM__NODE_ROLE__ROLE_WORKER;
    n.labels = labels;
    n.n_labels = 2;
    static const struct {
        const char *c;
        bool ok;
    } cases[] = {
        {"node.id==abcdef", true},
        {"node.id == abcdef", true},
        {"node.id==abc", false},
        {"node.id!=abcdef", false},
        {"node.hostname==h1", true},
        {"node.hostname==h2", false},
        {"node.hostname!=h2", true},
        {"node.role==worker", true},
        {"node.role==manager", false},
        {"node.role!=manager", true},
        {"node.labels.zone==east", true},
        {"node.labels.zone ==  east", true},
        {"node.labels.zone==west", false},
        {"node.labels.zone!=west", true},
        {"node.labels.disk==ssd", true},
        {"node.labels.rack==1", false}, /* a missing label equals nothing */
        {"node.labels.rack!=1", true},
        {"node.role==worker ", true}, /* spaces around key and value do not count */
        {"  node.role==worker", true},
        {"node.labels.zone == east  ", true},
        {"node.labels.zone", false}, /* no operator */
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (mgr__constraint_ok(&n, cases[i].c) != cases[i].ok)
            fail_msg("constraint '%s' on a worker: wanted %s", cases[i].c,
                     cases[i].ok ? "match" : "no match");
    n.role = SWARM__NODE_ROLE__ROLE_MANAGER;
    assert_true(mgr__constraint_ok(&n, "node.role==manager"));
    assert_false(mgr__constraint_ok(&n, "node.role==worker"));
    (void)state;
}

/* ------------------------------------------------------------------ filters */

/* Down, drained, never-connected and session-less nodes take no task. */
static void test_filters(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b"), *c = mt_node_add(t, "c"),
                   *d = mt_node_add(t, "d"), *e = mt_node_add(t, "e");
    (void)d; /* joined, never connected: state Unknown */
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    mt_node_connect(c, 4 * CPU, 4 * GIB);
    mt_node_connect(e, 4 * CPU, 4 * GIB);
    mt_node_availability(t, b->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
    mt_node_disconnect(c);
    mt_set_node_state(t, c->id, SWARM__NODE_STATE__NODE_DOWN);
    mt_node_disconnect(e); /* still Ready in the store, but no agent to run anything */
    Swarm__Node *ne = mt_store_node(t, e->id);
    assert_int_equal(ne->state, SWARM__NODE_STATE__NODE_READY);
    swarm__node__free_unpacked(ne, NULL);

    char web[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 4}, web);
    wait_placed(t, web, 4);
    assert_all_on(t, web, a, 4);

    /* a paused node takes no new task either */
    mt_node_availability(t, a->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_PAUSE);
    char api[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "api", .replicas = 1}, api);
    wait_pending(t, api, 1, "(6 nodes: 4 not ready, 2 not active, 0 fail constraints");
    /* the paused node keeps its tasks */
    assert_all_on(t, web, a, 4);
    mt_node_availability(t, a->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE);
    wait_placed(t, api, 1);
    assert_all_on(t, api, a, 1);
}

static void test_constraints_place(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "node-a"), *b = mt_node_add(t, "node-b");
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    label_add(t, a->id, "zone", "east");
    char by_id[SW_ID_LEN + 1], by_host[SW_ID_LEN + 1], zone[SW_ID_LEN + 1], not_zone[SW_ID_LEN + 1],
        mgr_only[SW_ID_LEN + 1], ssd[SW_ID_LEN + 1];
    char idc[64];
    snprintf(idc, sizeof(idc), "node.id==%s", b->id);
    mt_svc_create(t, &(struct mt_svc){.name = "by-id", .replicas = 2, .constraints = {idc}}, by_id);
    mt_svc_create(t,
                  &(struct mt_svc){
                      .name = "by-host", .replicas = 2, .constraints = {"node.hostname!=node-b"}},
                  by_host);
    mt_svc_create(
        t,
        &(struct mt_svc){.name = "zone", .replicas = 2, .constraints = {"node.labels.zone==east"}},
        zone);
    mt_svc_create(t,
                  &(struct mt_svc){
                      .name = "not-zone", .replicas = 2, .constraints = {"node.labels.zone!=east"}},
                  not_zone);
    mt_svc_create(
        t,
        &(struct mt_svc){.name = "mgr-only", .replicas = 1, .constraints = {"node.role==manager"}},
        mgr_only);
    mt_svc_create(t,
                  &(struct mt_svc){.name = "ssd",
                                   .replicas = 1,
                                   .constraints = {"node.role==worker", "node.labels.disk==ssd"}},
                  ssd);
    wait_placed(t, by_id, 2);
    wait_placed(t, by_host, 2);
    wait_placed(t, zone, 2);
    wait_placed(t, not_zone, 2);
    assert_all_on(t, by_id, b, 2);
    assert_all_on(t, by_host, a, 2);
    assert_all_on(t, zone, a, 2);
    assert_all_on(t, not_zone, b, 2);
    /* fits nowhere: pending, with the reason */
    wait_pending(t, mgr_only, 1, "1 not ready, 0 not active, 2 fail constraints");
    wait_pending(t, ssd, 1, "1 not ready, 0 not active, 2 fail constraints");
    /* placed as soon as a node can take it */
    label_add(t, b->id, "disk", "ssd");
    wait_placed(t, ssd, 1);
    assert_all_on(t, ssd, b, 1);
    /* and the one that still fits nowhere keeps its reason */
    wait_pending(t, mgr_only, 1, "no suitable node");
}

static void test_reservations(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *small = mt_node_add(t, "small"), *big = mt_node_add(t, "big");
    mt_node_connect(small, 1 * CPU, 1 * GIB);
    mt_node_connect(big, 4 * CPU, 3 * GIB);

    char cpu[SW_ID_LEN + 1], mem[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "cpu", .replicas = 2, .reserve_nano_cpus = 3 * CPU},
                  cpu);
    wait_pending(t, cpu, 1, "0 without memory, 2 without CPU");
    struct mt_node *two[] = {small, big};
    size_t on[2];
    live_per_node(t, cpu, two, 2, on);
    assert_int_equal(on[0], 0);
    assert_int_equal(on[1], 1);
    mt_svc_create(t, &(struct mt_svc){.name = "mem", .replicas = 2, .reserve_memory = 2 * GIB},
                  mem);
    wait_pending(t, mem, 1, "2 without memory, 0 without CPU");
    live_per_node(t, mem, two, 2, on);
    assert_int_equal(on[0], 0);
    assert_int_equal(on[1], 1);

    /* unreserved tasks still go anywhere */
    char free_[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "free", .replicas = 2}, free_);
    wait_placed(t, free_, 2);

    /* a node with room: both pending tasks go there */
    struct mt_node *huge = mt_node_add(t, "huge");
    mt_node_connect(huge, 8 * CPU, 16 * GIB);
    wait_placed(t, cpu, 2);
    wait_placed(t, mem, 2);
    struct mt_node *nodes[] = {small, big, huge};
    size_t counts[3];
    live_per_node(t, cpu, nodes, 3, counts);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 1);
    live_per_node(t, mem, nodes, 3, counts);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 1);
}

static void test_pending_until_undrained(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    mt_node_connect(a, 1 * CPU, 1 * GIB);
    mt_node_availability(t, a->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
    char web[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 2}, web);
    wait_pending(t, web, 2, "(2 nodes: 1 not ready, 1 not active");
    mt_node_availability(t, a->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE);
    wait_placed(t, web, 2);
    assert_all_on(t, web, a, 2);
}

/* ------------------------------------------------------------------ spread */

/* Fewest tasks of the service first, then fewest tasks overall. */
static void test_spread(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b");
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    char other[SW_ID_LEN + 1], web[SW_ID_LEN + 1], idc[64];
    snprintf(idc, sizeof(idc), "node.id==%s", a->id);
    mt_svc_create(t, &(struct mt_svc){.name = "other", .replicas = 3, .constraints = {idc}}, other);
    wait_placed(t, other, 3);
    assert_all_on(t, other, a, 3);
    /* a holds 3 tasks, b none: by service alone 2+1 either way; overall load breaks the tie
     * toward b; by overall load alone all three would go to b */
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 3}, web);
    wait_placed(t, web, 3);
    struct mt_node *nodes[] = {a, b};
    size_t counts[2];
    live_per_node(t, web, nodes, 2, counts);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 2);
    /* one more replica: a has fewer of web */
    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = web;
    up.set_replicas = true;
    up.replicas = 4;
    mt_service_update(t, &up);
    wait_placed(t, web, 4);
    live_per_node(t, web, nodes, 2, counts);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 2);
}

/* ------------------------------------------------------------------ orchestrator */

/* The live task id of each slot 1..n ("" if none). */
static void slot_ids(struct mt *t, const char *svc, char ids[][SW_ID_LEN + 1], size_t n)
{
    struct mgr_objs o;
    for (size_t i = 0; i < n; i++)
        ids[i][0] = '\0';
    mt_service_tasks(t, svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (is_live(task) && task->slot >= 1 && task->slot <= n)
            snprintf(ids[task->slot - 1], SW_ID_LEN + 1, "%s", task->id);
    }
    mgr__objs_free(&o);
}

struct slots_done {
    const char *svc;
    uint64_t from; /* every task of slots >= from finished and wanted shut down */
};

static bool slots_stopped(struct mt *t, void *ud)
{
    struct slots_done *w = ud;
    struct mgr_objs o;
    bool ok = true;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (task->slot >= w->from &&
            (task->desired_state <= ST(RUNNING) || task->state < ST(COMPLETE)))
            ok = false;
    }
    mgr__objs_free(&o);
    return ok;
}

static void test_scale(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *n[3] = {mt_node_add(t, "a"), mt_node_add(t, "b"), mt_node_add(t, "c")};
    for (int i = 0; i < 3; i++) {
        n[i]->auto_run = true;
        mt_node_connect(n[i], 4 * CPU, 4 * GIB);
    }
    char web[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 4}, web);
    assert_true(mt_wait_running(t, web, 4));
    char before[4][SW_ID_LEN + 1], after[4][SW_ID_LEN + 1];
    slot_ids(t, web, before, 4);
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(before[i][0], '\0');

    /* down to 2: the highest slots go, the others are untouched */
    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = web;
    up.set_replicas = true;
    up.replicas = 2;
    mt_service_update(t, &up);
    struct slots_done sd = {web, 3};
    assert_true(mt_wait_for(t, slots_stopped, &sd, MT_WAIT_MS));
    assert_true(mt_wait_running(t, web, 2));
    slot_ids(t, web, after, 4);
    assert_string_equal(after[0], before[0]);
    assert_string_equal(after[1], before[1]);
    assert_string_equal(after[2], "");
    assert_string_equal(after[3], "");

    /* up to 3: slot 3 gets a new task */
    up.replicas = 3;
    mt_service_update(t, &up);
    assert_true(mt_wait_running(t, web, 3));
    slot_ids(t, web, after, 4);
    assert_string_equal(after[0], before[0]);
    assert_string_equal(after[1], before[1]);
    assert_int_not_equal(after[2][0], '\0');
    assert_string_not_equal(after[2], before[2]);
    assert_string_equal(after[3], "");

    /* to 0: nothing live */
    up.replicas = 0;
    mt_service_update(t, &up);
    sd.from = 1;
    assert_true(mt_wait_for(t, slots_stopped, &sd, MT_WAIT_MS));
}

/* The single live running task of a one-replica service (id into buf), if any. */
static bool running_task(struct mt *t, const char *svc, char *buf)
{
    struct mgr_objs o;
    bool found = false;
    mt_service_tasks(t, svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (is_live(task) && task->state == ST(RUNNING)) {
            snprintf(buf, SW_ID_LEN + 1, "%s", task->id);
            found = true;
        }
    }
    mgr__objs_free(&o);
    return found;
}

/* Every task of the service finished and wanted shut down (the orchestrator looked at the
 * last one and did not replace it). */
static bool given_up(struct mt *t, void *ud)
{
    struct mt_count c;
    struct slots_done sd = {ud, 0};
    mt_count_tasks(t, ud, &c);
    return c.total > 0 && c.live == 0 && slots_stopped(t, &sd);
}

static void test_restart_policies(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char none[SW_ID_LEN + 1], okf[SW_ID_LEN + 1], badf[SW_ID_LEN + 1], any[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "none", .replicas = 1, .restart = "none"}, none);
    mt_svc_create(t, &(struct mt_svc){.name = "ok", .replicas = 1, .restart = "on-failure"}, okf);
    mt_svc_create(t, &(struct mt_svc){.name = "bad", .replicas = 1, .restart = "on-failure"}, badf);
    mt_svc_create(t, &(struct mt_svc){.name = "any", .replicas = 1}, any);
    const char *svcs[] = {none, okf, badf, any};
    char ids[4][SW_ID_LEN + 1];
    for (int i = 0; i < 4; i++) {
        assert_true(mt_wait_running(t, svcs[i], 1));
        assert_true(running_task(t, svcs[i], ids[i]));
    }
    /* one report, one commit: one pass decides all four */
    const char *tids[] = {ids[0], ids[1], ids[2], ids[3]};
    Swarm__TaskState st[] = {ST(FAILED), ST(COMPLETE), ST(FAILED), ST(COMPLETE)};
    int32_t codes[] = {1, 0, 1, 0};
    assert_int_equal(mt_node_report_many(a, tids, 4, st, codes), 0);

    assert_true(mt_wait_running(t, badf, 1));
    assert_true(mt_wait_running(t, any, 1));
    assert_true(mt_wait_for(t, given_up, none, MT_WAIT_MS));
    assert_true(mt_wait_for(t, given_up, okf, MT_WAIT_MS));
    struct mt_count c;
    mt_count_tasks(t, none, &c);
    assert_int_equal(c.total, 1);
    mt_count_tasks(t, okf, &c);
    assert_int_equal(c.total, 1);
    mt_count_tasks(t, badf, &c);
    assert_int_equal(c.total, 2);
    mt_count_tasks(t, any, &c);
    assert_int_equal(c.total, 2);
    char again[SW_ID_LEN + 1];
    assert_true(running_task(t, badf, again));
    assert_string_not_equal(again, ids[2]);
}

/* End each task of a one-replica service as soon as it runs, until the orchestrator stops
 * replacing it (or limit runs); returns the number of runs. */
static unsigned end_until_given_up(struct mt *t, struct mt_node *node, const char *svc,
                                   unsigned limit, Swarm__TaskState end, int32_t code)
{
    unsigned runs = 0;
    char last[SW_ID_LEN + 1] = "";
    while (runs < limit) {
        char id[SW_ID_LEN + 1];
        bool up = false;
        for (int i = 0; i < 3000 && !up; i++) {
            if (given_up(t, (void *)svc))
                return runs;
            up = running_task(t, svc, id) && strcmp(id, last) != 0;
            if (!up)
                mt_run_for(t, 5);
        }
        if (!up)
            fail_msg("service %s: neither running again nor given up after %u runs", svc, runs);
        runs++;
        snprintf(last, sizeof(last), "%s", id);
        assert_int_equal(mt_node_report(node, id, end, code), 0);
    }
    return runs;
}

static unsigned fail_until_given_up(struct mt *t, struct mt_node *node, const char *svc,
                                    unsigned limit)
{
    return end_until_given_up(t, node, svc, limit, ST(FAILED), 1);
}

struct version_want {
    const char *svc;
    uint64_t version;
};

/* A task of this spec version runs. */
static bool version_running(struct mt *t, void *ud)
{
    struct version_want *w = ud;
    struct mgr_objs o;
    bool found = false;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        found |= is_live(task) && task->state == ST(RUNNING) && task->spec_version == w->version;
    }
    mgr__objs_free(&o);
    return found;
}

static struct mt_node *one_node(struct mt *t)
{
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    return a;
}

/* At most N restarts after the first run: N + 1 runs. */
static void test_max_attempts(void **state)
{
    struct mt *t = *state;
    struct mt_node *a = one_node(t);
    char two[SW_ID_LEN + 1];
    mt_svc_create(
        t,
        &(struct mt_svc){.name = "two", .replicas = 1, .restart = "on-failure", .max_attempts = 2},
        two);
    assert_int_equal(fail_until_given_up(t, a, two, 20), 3);
}

/* More attempts than the history keeps tasks of a slot (5). */
static void test_max_attempts_beyond_history(void **state)
{
    struct mt *t = *state;
    struct mt_node *a = one_node(t);
    char six[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "six", .replicas = 1, .max_attempts = 6}, six);
    assert_int_equal(fail_until_given_up(t, a, six, 20), 7);
}

/* A slot that ran out of attempts runs again with a new spec, which has attempts of its own. */
static void test_max_attempts_then_update(void **state)
{
    struct mt *t = *state;
    struct mt_node *a = one_node(t);
    char two[SW_ID_LEN + 1];
    mt_svc_create(
        t,
        &(struct mt_svc){.name = "two", .replicas = 1, .restart = "on-failure", .max_attempts = 2},
        two);
    assert_int_equal(fail_until_given_up(t, a, two, 20), 3);
    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = two;
    up.task = mt_svc_spec(
        &(struct mt_svc){.env = "VERSION=2", .restart = "on-failure", .max_attempts = 2});
    mt_service_update(t, &up);
    mt_svc_spec_free(up.task);
    struct version_want vw = {two, 2};
    assert_true(mt_wait_for(t, version_running, &vw, MT_WAIT_MS));
    assert_int_equal(fail_until_given_up(t, a, two, 20), 3);
}

/* With --restart-condition any, a task that exits 0 is restarted, and that counts. */
static void test_max_attempts_any(void **state)
{
    struct mt *t = *state;
    struct mt_node *a = one_node(t);
    char done[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "done", .replicas = 1, .max_attempts = 1}, done);
    assert_int_equal(end_until_given_up(t, a, done, 20, ST(COMPLETE), 0), 2);
}

static bool history_trimmed(struct mt *t, void *ud)
{
    struct mt_count c;
    mt_count_tasks(t, ud, &c);
    return c.total == MGR_TASK_HISTORY_DEFAULT;
}

/* History: the newest 5 tasks of a slot are kept. */
static void test_history(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char web[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 1}, web);
    char ids[9][SW_ID_LEN + 1];
    for (int i = 0; i < 9; i++) {
        assert_true(mt_wait_running(t, web, 1));
        assert_true(running_task(t, web, ids[i]));
        if (i > 0)
            assert_string_not_equal(ids[i], ids[i - 1]);
        if (i < 8)
            assert_int_equal(mt_node_report(a, ids[i], ST(FAILED), 1), 0);
    }
    /* the oldest are trimmed (the passes after the 9th) */
    assert_true(mt_wait_for(t, history_trimmed, web, MT_WAIT_MS));
    struct mgr_objs o;
    mt_service_tasks(t, web, &o);
    assert_int_equal(o.n, MGR_TASK_HISTORY_DEFAULT);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        bool newest = false;
        for (int k = 9 - MGR_TASK_HISTORY_DEFAULT; k < 9; k++)
            newest |= strcmp(task->id, ids[k]) == 0;
        if (!newest)
            fail_msg("task %s kept, not one of the newest %d", task->id, MGR_TASK_HISTORY_DEFAULT);
    }
    mgr__objs_free(&o);
}

/* A changed spec replaces tasks one at a time: never two slots down at once. */
struct rolling {
    const char *svc;
    uint64_t replicas, version;
    unsigned max_down;
    bool done;
};

static bool rolling_check(struct mt *t, void *ud)
{
    struct rolling *w = ud;
    struct mgr_objs o;
    unsigned down = 0, fresh = 0;
    mt_service_tasks(t, w->svc, &o);
    for (uint64_t slot = 1; slot <= w->replicas; slot++) {
        bool up = false;
        for (size_t i = 0; i < o.n; i++) {
            const Swarm__Task *task = (const Swarm__Task *)o.v[i];
            if (task->slot == slot && task->desired_state == ST(RUNNING) &&
                task->state == ST(RUNNING)) {
                up = true;
                fresh += task->spec_version == w->version;
            }
        }
        down += !up;
    }
    mgr__objs_free(&o);
    if (down > w->max_down)
        w->max_down = down;
    return fresh == w->replicas;
}

static void test_rolling_update(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *n[3] = {mt_node_add(t, "a"), mt_node_add(t, "b"), mt_node_add(t, "c")};
    for (int i = 0; i < 3; i++) {
        n[i]->auto_run = true;
        mt_node_connect(n[i], 4 * CPU, 4 * GIB);
    }
    char web[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 3}, web);
    assert_true(mt_wait_running(t, web, 3));

    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = web;
    up.task = mt_svc_spec(&(struct mt_svc){.env = "VERSION=2"});
    mt_service_update(t, &up);
    mt_svc_spec_free(up.task);
    struct rolling w = {.svc = web, .replicas = 3, .version = 2};
    assert_true(mt_wait_for(t, rolling_check, &w, MT_WAIT_MS));
    assert_int_equal(w.max_down, 1);

    /* every slot: one old task shut down, one new running with the new spec */
    struct mgr_objs o;
    mt_service_tasks(t, web, &o);
    assert_int_equal(o.n, 6);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (task->spec_version == 1) {
            assert_int_equal(task->desired_state, ST(SHUTDOWN));
            assert_int_equal(task->state, ST(SHUTDOWN));
        } else {
            assert_int_equal(task->spec_version, 2);
            assert_int_equal(task->state, ST(RUNNING));
            assert_int_equal(task->spec->n_env, 1);
            assert_string_equal(task->spec->env[0], "VERSION=2");
        }
    }
    mgr__objs_free(&o);
}

/* The desired state of a task of the service (0 if not found). */
static Swarm__TaskState find_desired(struct mt *t, const char *svc, const char *task_id)
{
    struct mgr_objs o;
    Swarm__TaskState d = 0;
    mt_service_tasks(t, svc, &o);
    for (size_t i = 0; i < o.n; i++)
        if (strcmp(((Swarm__Task *)o.v[i])->id, task_id) == 0)
            d = ((Swarm__Task *)o.v[i])->desired_state;
    mgr__objs_free(&o);
    return d;
}

static bool no_tasks(struct mt *t, void *ud)
{
    struct mt_count c;
    mt_count_tasks(t, ud, &c);
    return c.total == 0;
}

static void test_service_rm(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char web[SW_ID_LEN + 1], keep[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 2}, web);
    mt_svc_create(t, &(struct mt_svc){.name = "keep", .replicas = 1}, keep);
    assert_true(mt_wait_running(t, web, 2));
    assert_true(mt_wait_running(t, keep, 1));
    char ids[2][SW_ID_LEN + 1];
    slot_ids(t, web, ids, 2);
    mt_service_remove(t, web);
    /* stopped on the node, then gone from the store */
    assert_true(mt_wait_for(t, no_tasks, web, MT_WAIT_MS));
    for (int k = 0; k < 2; k++) {
        bool stop = false, removed = false;
        for (size_t i = 0; i < a->n_msgs; i++)
            for (size_t j = 0; j < a->msgs[i]->n_assignments; j++) {
                const Swarm__Assignment *as = a->msgs[i]->assignments[j];
                if (!as->task || strcmp(as->task->id, ids[k]) != 0)
                    continue;
                if (as->action == SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE)
                    removed = true;
                else if (as->task->desired_state == ST(SHUTDOWN))
                    stop = true;
            }
        assert_true(stop);
        assert_true(removed);
    }
    /* the other service is untouched */
    struct mt_count c;
    mt_count_tasks(t, keep, &c);
    assert_int_equal(c.total, 1);
    assert_int_equal(c.running, 1);
}

/* A node leaves for good (node rm --force): its tasks end and their slots run elsewhere. */
static void test_node_removed(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b");
    a->auto_run = b->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char web[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 2}, web);
    assert_true(mt_wait_running(t, web, 2));
    assert_all_on(t, web, a, 2);
    mt_node_connect(b, 4 * CPU, 4 * GIB);

    struct mt_reply r;
    Swarm__RemoveNodeRequest req = SWARM__REMOVE_NODE_REQUEST__INIT;
    req.id = a->id;
    req.force = true;
    if (mt_call(t, "Control.RemoveNode", &req.base, &r) != 0)
        fail_msg("RemoveNode: %d %s", r.status, r.error);
    mt_reply_clear(&r);
    mt_node_disconnect(a);
    struct mt_node *nodes[] = {a, b};
    size_t counts[2];
    /* both slots run on b */
    for (int k = 0; k < 3000; k++) {
        struct mt_count c;
        mt_count_tasks(t, web, &c);
        live_per_node(t, web, nodes, 2, counts);
        if (c.running == 2 && c.live == 2 && counts[1] == 2)
            break;
        mt_run_for(t, 5);
    }
    assert_int_equal(live_per_node(t, web, nodes, 2, counts), 2);
    assert_int_equal(counts[1], 2);
    assert_true(mt_wait_running(t, web, 2));
    /* the tasks of the removed node show as ended, not as running */
    struct mgr_objs o;
    mt_service_tasks(t, web, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (strcmp(task->node_id, a->id) == 0)
            assert_true(task->state >= ST(COMPLETE));
    }
    mgr__objs_free(&o);
}

/* A removed service whose task's node is removed before the task stopped: the task goes. */
static void test_service_rm_then_node_rm(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char web[SW_ID_LEN + 1], task[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 1}, web);
    wait_placed(t, web, 1);
    struct mgr_objs o;
    mt_service_tasks(t, web, &o);
    assert_int_equal(o.n, 1);
    snprintf(task, sizeof(task), "%s", ((Swarm__Task *)o.v[0])->id);
    mgr__objs_free(&o);
    assert_int_equal(mt_node_report(a, task, ST(RUNNING), 0), 0);
    mt_service_remove(t, web);
    for (int k = 0; k < 3000 && find_desired(t, web, task) != ST(SHUTDOWN); k++)
        mt_run_for(t, 5);
    assert_int_equal(find_desired(t, web, task), ST(SHUTDOWN));
    /* a never says it stopped; it is removed */
    mt_node_disconnect(a);
    struct mt_reply r;
    Swarm__RemoveNodeRequest req = SWARM__REMOVE_NODE_REQUEST__INIT;
    req.id = a->id;
    req.force = true;
    if (mt_call(t, "Control.RemoveNode", &req.base, &r) != 0)
        fail_msg("RemoveNode: %d %s", r.status, r.error);
    mt_reply_clear(&r);
    assert_true(mt_wait_for(t, no_tasks, web, MT_WAIT_MS));
}

/* A node that goes down while one of its tasks is being replaced: the replacement still
 * comes (the old task cannot report that it stopped). */
static void test_down_while_stopping(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b");
    b->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char web[SW_ID_LEN + 1], old[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 1}, web);
    wait_placed(t, web, 1);
    struct mgr_objs o;
    mt_service_tasks(t, web, &o);
    assert_int_equal(o.n, 1);
    snprintf(old, sizeof(old), "%s", ((Swarm__Task *)o.v[0])->id);
    mgr__objs_free(&o);
    assert_int_equal(mt_node_report(a, old, ST(RUNNING), 0), 0);
    mt_node_connect(b, 4 * CPU, 4 * GIB);

    /* a new spec: the old task is told to stop; a never answers, then goes down */
    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = web;
    up.task = mt_svc_spec(&(struct mt_svc){.env = "VERSION=2"});
    mt_service_update(t, &up);
    mt_svc_spec_free(up.task);
    for (int k = 0; k < 3000 && find_desired(t, web, old) != ST(SHUTDOWN); k++)
        mt_run_for(t, 5);
    assert_int_equal(find_desired(t, web, old), ST(SHUTDOWN));
    mt_node_disconnect(a);
    mt_set_node_state(t, a->id, SWARM__NODE_STATE__NODE_DOWN);
    struct version_want vw = {web, 2};
    assert_true(mt_wait_for(t, version_running, &vw, MT_WAIT_MS));
}

/* ------------------------------------------------------------------ global */

/* Live tasks of a global service per node are want[k]; those on connected nodes run; no live
 * task elsewhere. */
struct global_want {
    const char *svc;
    struct mt_node **nodes;
    size_t n;
    const size_t *want;
};

static bool global_is(struct mt *t, void *ud)
{
    struct global_want *w = ud;
    struct mgr_objs o;
    bool ok = true;
    size_t live = 0, placed = 0;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++)
        live += is_live((const Swarm__Task *)o.v[i]);
    for (size_t k = 0; k < w->n; k++) {
        size_t here = 0;
        for (size_t i = 0; i < o.n; i++) {
            const Swarm__Task *task = (const Swarm__Task *)o.v[i];
            if (!is_live(task) || strcmp(task->node_id, w->nodes[k]->id) != 0)
                continue;
            here++;
            if (w->nodes[k]->c && task->state != ST(RUNNING))
                ok = false;
        }
        ok &= here == w->want[k];
        placed += here;
    }
    mgr__objs_free(&o);
    return ok && live == placed;
}

static void expect_global(struct mt *t, const char *svc, struct mt_node **nodes, size_t n,
                          const size_t *want)
{
    struct global_want w = {svc, nodes, n, want};
    if (!mt_wait_for(t, global_is, &w, MT_WAIT_MS)) {
        struct mgr_objs o;
        mt_service_tasks(t, svc, &o);
        for (size_t i = 0; i < o.n; i++) {
            const Swarm__Task *task = (const Swarm__Task *)o.v[i];
            print_error("task node '%s' desired %d state %d: %s\n", task->node_id,
                        task->desired_state, task->state, task->message);
        }
        mgr__objs_free(&o);
        fail_msg("global service %s: not the tasks wanted per node", svc);
    }
}

static void test_global(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *n[3] = {mt_node_add(t, "a"), mt_node_add(t, "b"), mt_node_add(t, "c")};
    for (int i = 0; i < 3; i++)
        n[i]->auto_run = true;
    mt_node_connect(n[0], 1 * CPU, 1 * GIB);
    mt_node_connect(n[1], 1 * CPU, 1 * GIB);
    char agent[SW_ID_LEN + 1], gpu[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "agent", .global = true}, agent);
    mt_svc_create(
        t, &(struct mt_svc){.name = "gpu", .global = true, .constraints = {"node.labels.gpu==yes"}},
        gpu);
    /* one per node; c has joined but never connected: its task waits there */
    expect_global(t, agent, n, 3, (size_t[]){1, 1, 1});
    wait_pending(t, agent, 1, "1 not ready");
    /* c comes up: its task runs */
    mt_node_connect(n[2], 1 * CPU, 1 * GIB);
    expect_global(t, agent, n, 3, (size_t[]){1, 1, 1});
    /* b drained: its task stops and is not replaced */
    mt_node_availability(t, n[1]->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
    expect_global(t, agent, n, 3, (size_t[]){1, 0, 1});
    /* a down: its task is orphaned, not replaced */
    mt_node_disconnect(n[0]);
    mt_set_node_state(t, n[0]->id, SWARM__NODE_STATE__NODE_DOWN);
    expect_global(t, agent, n, 3, (size_t[]){0, 0, 1});
    /* the constrained one only where the label is */
    struct mt_count c;
    mt_count_tasks(t, gpu, &c);
    assert_int_equal(c.total, 0);
    label_add(t, n[2]->id, "gpu", "yes");
    expect_global(t, gpu, n, 3, (size_t[]){0, 0, 1});
    /* b active again: it runs one again; a new node gets one */
    mt_node_availability(t, n[1]->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE);
    expect_global(t, agent, n, 3, (size_t[]){0, 1, 1});
    struct mt_node *d = mt_node_add(t, "d");
    d->auto_run = true;
    mt_node_connect(d, 1 * CPU, 1 * GIB);
    struct mt_node *all[] = {n[0], n[1], n[2], d};
    expect_global(t, agent, all, 4, (size_t[]){0, 1, 1, 1});
}

const struct CMUnitTest mt_orchestrator_tests[] = {
    cmocka_unit_test(test_constraint_match),
    cmocka_unit_test_setup_teardown(test_filters, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_constraints_place, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_reservations, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_pending_until_undrained, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_spread, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_scale, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_restart_policies, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_max_attempts, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_max_attempts_beyond_history, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_max_attempts_then_update, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_max_attempts_any, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_history, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_rolling_update, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_service_rm, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_node_removed, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_down_while_stopping, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_service_rm_then_node_rm, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_global, mt_setup, mt_node_teardown),
};
const size_t mt_orchestrator_n = sizeof(mt_orchestrator_tests) / sizeof(mt_orchestrator_tests[0]);
