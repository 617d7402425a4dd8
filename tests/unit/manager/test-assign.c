/* manager/ dispatcher assignments, seen from fake nodes in session: the first message is the
 * node's complete set (its tasks and the secrets they need, nothing else), later ones are
 * changes; a secret goes to a node only while a task there needs it, and is removed when
 * the last such task ends. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tests.h"

#define GIB (1024LL * 1024 * 1024)
#define CPU 1000000000LL
#define ST(x) SWARM__TASK_STATE__TASK_##x
#define UPDATE SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE
#define REMOVE SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE

/* Secret assignments with this action and id in messages [from, to) of a node. */
static unsigned count_secret(const struct mt_node *n, size_t from, size_t to,
                             Swarm__AssignmentAction action, const char *id)
{
    unsigned k = 0;
    for (size_t i = from; i < to && i < n->n_msgs; i++)
        for (size_t j = 0; j < n->msgs[i]->n_assignments; j++) {
            const Swarm__Assignment *a = n->msgs[i]->assignments[j];
            if (a->secret && a->action == action && strcmp(a->secret->id, id) == 0)
                k++;
        }
    return k;
}

/* The first message in [from, n_msgs) holding an assignment of this task with this action
 * and desired state (0: any), or -1. */
static ssize_t find_task_msg(const struct mt_node *n, size_t from, const char *task_id,
                             Swarm__AssignmentAction action, Swarm__TaskState desired)
{
    for (size_t i = from; i < n->n_msgs; i++)
        for (size_t j = 0; j < n->msgs[i]->n_assignments; j++) {
            const Swarm__Assignment *a = n->msgs[i]->assignments[j];
            if (a->task && a->action == action && strcmp(a->task->id, task_id) == 0 &&
                (!desired || a->task->desired_state == desired))
                return (ssize_t)i;
        }
    return -1;
}

/* Every secret a node was sent was needed by a task it had been sent (wanted running) in
 * that message or before; only the first message of a session is full. */
static void check_no_stray_secrets(const struct mt_node *n)
{
    char need[64][SW_ID_LEN + 1];
    size_t n_need = 0;
    for (size_t i = 0; i < n->n_msgs; i++) {
        const Swarm__SessionMessage *m = n->msgs[i];
        for (size_t j = 0; j < m->n_assignments; j++) {
            const Swarm__Task *task = m->assignments[j]->task;
            if (!task || m->assignments[j]->action != UPDATE || task->desired_state > ST(RUNNING) ||
                !task->spec)
                continue;
            for (size_t k = 0; k < task->spec->n_secrets && n_need < 64; k++)
                snprintf(need[n_need++], SW_ID_LEN + 1, "%s", task->spec->secrets[k]->secret_id);
        }
        for (size_t j = 0; j < m->n_assignments; j++) {
            const Swarm__Assignment *a = m->assignments[j];
            if (!a->secret || a->action != UPDATE)
                continue;
            bool needed = false;
            for (size_t k = 0; k < n_need && !needed; k++)
                needed = strcmp(need[k], a->secret->id) == 0;
            if (!needed)
                fail_msg("node %s was sent secret %s (%s) that none of its tasks uses", n->hostname,
                         a->secret->name, a->secret->id);
            assert_int_not_equal(a->secret->data.len, 0);
        }
    }
}

static const Swarm__Secret *secret_in(const Swarm__SessionMessage *m, const char *id)
{
    for (size_t j = 0; j < m->n_assignments; j++)
        if (m->assignments[j]->secret && m->assignments[j]->action == UPDATE &&
            strcmp(m->assignments[j]->secret->id, id) == 0)
            return m->assignments[j]->secret;
    return NULL;
}

/* The live task of a one-replica service. */
static void live_task(struct mt *t, const char *svc, char *ret_id, char *ret_node)
{
    struct mgr_objs o;
    bool found = false;
    mt_service_tasks(t, svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (task->desired_state <= ST(RUNNING) && task->state < ST(COMPLETE)) {
            assert_false(found);
            found = true;
            snprintf(ret_id, SW_ID_LEN + 1, "%s", task->id);
            if (ret_node)
                snprintf(ret_node, SW_ID_LEN + 1, "%s", task->node_id);
        }
    }
    mgr__objs_free(&o);
    assert_true(found);
}

static bool no_tasks(struct mt *t, void *ud)
{
    struct mt_count c;
    mt_count_tasks(t, ud, &c);
    return c.total == 0;
}

static void start(struct mt *t)
{
    mt_start_ok(t, true);
    mt_node_availability(t, mgr_node_id(t->m), SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
}

/* ------------------------------------------------------------------ the first message */

static void test_first_message_full_set(void **state)
{
    struct mt *t = *state;
    start(t);
    char s1[SW_ID_LEN + 1], s2[SW_ID_LEN + 1], s3[SW_ID_LEN + 1];
    mt_secret_create(t, "s1", "one", s1);
    mt_secret_create(t, "s2", "two", s2);
    mt_secret_create(t, "s3", "three", s3);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b");
    a->auto_run = b->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    /* nothing to do yet: a full, empty set */
    assert_true(a->msgs[0]->full);
    assert_int_equal(a->msgs[0]->n_assignments, 0);
    assert_string_not_equal(a->msgs[0]->session_id, "");

    char on_a[64], on_b[64], web[SW_ID_LEN + 1], db[SW_ID_LEN + 1], other[SW_ID_LEN + 1];
    snprintf(on_a, sizeof(on_a), "node.id==%s", a->id);
    snprintf(on_b, sizeof(on_b), "node.id==%s", b->id);
    mt_svc_create(
        t, &(struct mt_svc){.name = "web", .replicas = 1, .constraints = {on_a}, .secrets = {"s1"}},
        web);
    mt_svc_create(t,
                  &(struct mt_svc){
                      .name = "db", .replicas = 1, .constraints = {on_a}, .secrets = {"s1", "s2"}},
                  db);
    mt_svc_create(
        t,
        &(struct mt_svc){.name = "other", .replicas = 1, .constraints = {on_b}, .secrets = {"s3"}},
        other);
    assert_true(mt_wait_running(t, web, 1));
    assert_true(mt_wait_running(t, db, 1));
    assert_true(mt_wait_running(t, other, 1));
    char web_task[SW_ID_LEN + 1], db_task[SW_ID_LEN + 1], other_task[SW_ID_LEN + 1];
    live_task(t, web, web_task, NULL);
    live_task(t, db, db_task, NULL);
    live_task(t, other, other_task, NULL);

    /* a new session: its first message is the whole set */
    mt_node_disconnect(a);
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    const Swarm__SessionMessage *m = a->msgs[a->session_start];
    assert_true(m->full);
    bool saw_web = false, saw_db = false;
    size_t n_secrets = 0;
    for (size_t j = 0; j < m->n_assignments; j++) {
        const Swarm__Assignment *as = m->assignments[j];
        assert_int_equal(as->action, UPDATE);
        if (as->task) {
            saw_web |= strcmp(as->task->id, web_task) == 0;
            saw_db |= strcmp(as->task->id, db_task) == 0;
            assert_string_equal(as->task->node_id, a->id);
            assert_string_not_equal(as->task->id, other_task);
        } else {
            assert_non_null(as->secret);
            n_secrets++;
        }
    }
    assert_true(saw_web && saw_db);
    assert_int_equal(n_secrets, 2);
    const Swarm__Secret *sec = secret_in(m, s1);
    assert_non_null(sec);
    assert_int_equal(sec->data.len, 3);
    assert_memory_equal(sec->data.data, "one", 3);
    sec = secret_in(m, s2);
    assert_non_null(sec);
    assert_int_equal(sec->data.len, 3);
    assert_memory_equal(sec->data.data, "two", 3);
    assert_null(secret_in(m, s3));

    mt_node_disconnect(b);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    m = b->msgs[b->session_start];
    assert_true(m->full);
    assert_null(secret_in(m, s1));
    assert_null(secret_in(m, s2));
    sec = secret_in(m, s3);
    assert_non_null(sec);
    assert_memory_equal(sec->data.data, "three", 5);
    assert_int_not_equal(find_task_msg(b, b->session_start, other_task, UPDATE, 0), -1);

    check_no_stray_secrets(a);
    check_no_stray_secrets(b);
}

/* ------------------------------------------------------------------ changes */

static void test_incremental_and_secret_lifetime(void **state)
{
    struct mt *t = *state;
    start(t);
    char s1[SW_ID_LEN + 1], s2[SW_ID_LEN + 1];
    mt_secret_create(t, "s1", "one", s1);
    mt_secret_create(t, "s2", "two", s2);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b");
    a->auto_run = b->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    char on_a[64], web[SW_ID_LEN + 1], db[SW_ID_LEN + 1], plain[SW_ID_LEN + 1];
    snprintf(on_a, sizeof(on_a), "node.id==%s", a->id);

    /* a task that needs s1: it and s1 come together, in a change */
    mt_svc_create(
        t, &(struct mt_svc){.name = "web", .replicas = 1, .constraints = {on_a}, .secrets = {"s1"}},
        web);
    assert_true(mt_wait_running(t, web, 1));
    char web_task[SW_ID_LEN + 1], db_task[SW_ID_LEN + 1];
    live_task(t, web, web_task, NULL);
    ssize_t i = find_task_msg(a, 1, web_task, UPDATE, ST(RUNNING));
    assert_true(i >= 1);
    assert_false(a->msgs[i]->full);
    assert_non_null(secret_in(a->msgs[i], s1));
    assert_int_equal(count_secret(a, 0, (size_t)i, UPDATE, s1), 0);

    /* a second task needing s1 and s2: only s2 is new */
    mt_svc_create(t,
                  &(struct mt_svc){
                      .name = "db", .replicas = 1, .constraints = {on_a}, .secrets = {"s1", "s2"}},
                  db);
    /* and a task with no secret on b */
    mt_svc_create(
        t, &(struct mt_svc){.name = "plain", .replicas = 2, .constraints = {"node.hostname==b"}},
        plain);
    assert_true(mt_wait_running(t, db, 1));
    assert_true(mt_wait_running(t, plain, 2));
    live_task(t, db, db_task, NULL);
    i = find_task_msg(a, 1, db_task, UPDATE, ST(RUNNING));
    assert_true(i >= 1);
    assert_non_null(secret_in(a->msgs[i], s2));
    assert_int_equal(count_secret(a, 0, a->n_msgs, UPDATE, s1), 1);
    assert_int_equal(count_secret(a, 0, a->n_msgs, UPDATE, s2), 1);

    /* db goes: its task is stopped then removed; s2 leaves with it, s1 stays (web uses it) */
    mt_service_remove(t, db);
    assert_true(mt_wait_for(t, no_tasks, db, MT_WAIT_MS));
    ssize_t stop = find_task_msg(a, 1, db_task, UPDATE, ST(SHUTDOWN));
    ssize_t gone = find_task_msg(a, 1, db_task, REMOVE, 0);
    assert_true(stop >= 1 && gone > stop);
    assert_int_equal(count_secret(a, 0, a->n_msgs, REMOVE, s2), 1);
    assert_int_equal(count_secret(a, (size_t)stop, (size_t)stop + 1, REMOVE, s2), 1);
    assert_int_equal(count_secret(a, 0, a->n_msgs, REMOVE, s1), 0);

    /* web's task ends (and is not restarted): s1 leaves too */
    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = web;
    up.set_replicas = true;
    up.replicas = 0;
    mt_service_update(t, &up);
    struct mt_count c;
    for (int k = 0; k < 2000 && count_secret(a, 0, a->n_msgs, REMOVE, s1) == 0; k++)
        mt_run_for(t, 5);
    assert_int_equal(count_secret(a, 0, a->n_msgs, REMOVE, s1), 1);
    mt_count_tasks(t, web, &c);
    assert_int_equal(c.live, 0);

    /* only the first message of the session was full */
    for (size_t k = 1; k < a->n_msgs; k++)
        assert_false(a->msgs[k]->full);
    for (size_t k = 1; k < b->n_msgs; k++)
        assert_false(b->msgs[k]->full);
    /* b ran tasks, but none with a secret: it never saw one */
    for (size_t k = 0; k < b->n_msgs; k++)
        for (size_t j = 0; j < b->msgs[k]->n_assignments; j++)
            assert_null(b->msgs[k]->assignments[j]->secret);
    check_no_stray_secrets(a);
    check_no_stray_secrets(b);
}

/* A task that ends by itself (and is not restarted) takes its secret off the node; a task of
 * the same node that still runs keeps its own. */
static void test_secret_removed_when_task_ends(void **state)
{
    struct mt *t = *state;
    start(t);
    char s1[SW_ID_LEN + 1], s2[SW_ID_LEN + 1];
    mt_secret_create(t, "s1", "one", s1);
    mt_secret_create(t, "s2", "two", s2);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    char job[SW_ID_LEN + 1], web[SW_ID_LEN + 1], task[SW_ID_LEN + 1];
    mt_svc_create(
        t, &(struct mt_svc){.name = "job", .replicas = 1, .restart = "none", .secrets = {"s1"}},
        job);
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 1, .secrets = {"s2"}}, web);
    assert_true(mt_wait_running(t, job, 1));
    assert_true(mt_wait_running(t, web, 1));
    live_task(t, job, task, NULL);
    assert_int_equal(count_secret(a, 0, a->n_msgs, UPDATE, s1), 1);
    assert_int_equal(mt_node_report(a, task, ST(COMPLETE), 0), 0);
    for (int k = 0; k < 3000 && count_secret(a, 0, a->n_msgs, REMOVE, s1) == 0; k++)
        mt_run_for(t, 5);
    assert_int_equal(count_secret(a, 0, a->n_msgs, REMOVE, s1), 1);
    assert_int_equal(count_secret(a, 0, a->n_msgs, REMOVE, s2), 0);
    /* and a new session's full set holds only s2 */
    mt_node_disconnect(a);
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    assert_null(secret_in(a->msgs[a->session_start], s1));
    assert_non_null(secret_in(a->msgs[a->session_start], s2));
    check_no_stray_secrets(a);
}

struct on_node {
    const char *svc, *node_id;
};

/* The service's one live task runs on this node. */
static bool running_on(struct mt *t, void *ud)
{
    struct on_node *w = ud;
    struct mgr_objs o;
    size_t live = 0, here = 0;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (task->desired_state > ST(RUNNING) || task->state >= ST(COMPLETE))
            continue;
        live++;
        here += task->state == ST(RUNNING) && strcmp(task->node_id, w->node_id) == 0;
    }
    mgr__objs_free(&o);
    return live == 1 && here == 1;
}

/* A task moving to another node takes its secret along, and the old node loses it. */
static void test_secret_follows_task(void **state)
{
    struct mt *t = *state;
    start(t);
    char s1[SW_ID_LEN + 1];
    mt_secret_create(t, "s1", "one", s1);
    struct mt_node *n[2] = {mt_node_add(t, "a"), mt_node_add(t, "b")};
    for (int k = 0; k < 2; k++) {
        n[k]->auto_run = true;
        mt_node_connect(n[k], 4 * CPU, 4 * GIB);
    }
    char web[SW_ID_LEN + 1], task[SW_ID_LEN + 1], node[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 1, .secrets = {"s1"}}, web);
    assert_true(mt_wait_running(t, web, 1));
    live_task(t, web, task, node);
    struct mt_node *x = strcmp(node, n[0]->id) == 0 ? n[0] : n[1];
    struct mt_node *y = x == n[0] ? n[1] : n[0];
    assert_int_equal(count_secret(x, 0, x->n_msgs, UPDATE, s1), 1);
    assert_int_equal(count_secret(y, 0, y->n_msgs, UPDATE, s1), 0);
    size_t y_before = y->n_msgs;

    mt_node_availability(t, x->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
    struct on_node w = {web, y->id};
    assert_true(mt_wait_for(t, running_on, &w, MT_WAIT_MS));
    char task2[SW_ID_LEN + 1];
    live_task(t, web, task2, node);
    assert_string_equal(node, y->id);
    ssize_t i = find_task_msg(y, y_before, task2, UPDATE, ST(RUNNING));
    assert_true(i >= 0);
    assert_non_null(secret_in(y->msgs[i], s1));
    ssize_t stop = find_task_msg(x, 1, task, UPDATE, ST(SHUTDOWN));
    assert_true(stop >= 1);
    assert_int_equal(count_secret(x, (size_t)stop, (size_t)stop + 1, REMOVE, s1), 1);
    check_no_stray_secrets(x);
    check_no_stray_secrets(y);
}

/* A task the scheduler has not placed on a node is not that node's to run: a global task
 * whose reservation does not fit stays pending, and its node must not be sent it. */
static void test_unplaced_task_not_sent(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    mt_node_connect(a, 1 * CPU, 1 * GIB);
    char big[SW_ID_LEN + 1], task[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "big", .global = true, .reserve_memory = 8 * GIB},
                  big);
    struct mt_count c;
    for (int k = 0; k < 2000; k++) {
        mt_count_tasks(t, big, &c);
        if (c.pending == 1)
            break;
        mt_run_for(t, 5);
    }
    assert_int_equal(c.pending, 1);
    live_task(t, big, task, NULL);
    mt_node_disconnect(a);
    mt_node_connect(a, 1 * CPU, 1 * GIB);
    for (size_t i = 0; i < a->n_msgs; i++)
        for (size_t j = 0; j < a->msgs[i]->n_assignments; j++) {
            const Swarm__Task *as = a->msgs[i]->assignments[j]->task;
            if (as && strcmp(as->id, task) == 0 && as->desired_state == ST(RUNNING))
                fail_msg("node sent task %s in state %d (%s), never placed there", task, as->state,
                         as->message);
        }
}

static bool no_task_sent(const struct mt_node *n)
{
    for (size_t i = 0; i < n->n_msgs; i++)
        for (size_t j = 0; j < n->msgs[i]->n_assignments; j++)
            if (n->msgs[i]->assignments[j]->task)
                return false;
    return true;
}

struct pending_why {
    const char *svc;
    const char *needle;
};

static bool pending_with(struct mt *t, void *ud)
{
    struct pending_why *w = ud;
    struct mgr_objs o;
    size_t k = 0;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        k += task->state == ST(PENDING) && strstr(task->message, w->needle) != NULL;
    }
    mgr__objs_free(&o);
    return k == 2;
}

/* A node whose runtime cannot run tasks (it says so when its session opens, or in a later
 * heartbeat) is sent none: they stay pending with the reason, and go to it once it can. */
static void test_node_without_runtime(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->runtime_error = "cgroup: no cgroup v2 mount and no v1 controllers";
    a->auto_run = true;
    mt_node_connect(a, 1 * CPU, 1 * GIB);
    Swarm__Node *sn = mt_store_node(t, a->id);
    for (int k = 0; k < 200 && !sn->runtime_error[0]; k++) {
        swarm__node__free_unpacked(sn, NULL);
        mt_run_for(t, 5);
        sn = mt_store_node(t, a->id);
    }
    assert_string_equal(sn->runtime_error, a->runtime_error);
    swarm__node__free_unpacked(sn, NULL);

    char svc[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 2}, svc);
    struct pending_why w = {svc, "1 cannot run tasks"};
    assert_true(mt_wait_for(t, pending_with, &w, MT_WAIT_MS));
    mt_run_for(t, 200); /* no churn: still pending, nothing sent */
    assert_true(pending_with(t, &w));
    assert_true(no_task_sent(a));

    /* it can now: the next heartbeat says so and the tasks go there */
    a->runtime_error = NULL;
    mt_node_heartbeat(a);
    assert_true(mt_wait_running(t, svc, 2));

    /* and it broke again: new tasks stay away, the running ones are its own business */
    a->runtime_error = "runtime: gone";
    mt_node_heartbeat(a);
    char svc2[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "api", .replicas = 2}, svc2);
    struct pending_why w2 = {svc2, "1 cannot run tasks"};
    assert_true(mt_wait_for(t, pending_with, &w2, MT_WAIT_MS));
}

const struct CMUnitTest mt_assign_tests[] = {
    cmocka_unit_test_setup_teardown(test_first_message_full_set, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_incremental_and_secret_lifetime, mt_setup,
                                    mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_secret_removed_when_task_ends, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_secret_follows_task, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_unplaced_task_not_sent, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_node_without_runtime, mt_setup, mt_node_teardown),
};
const size_t mt_assign_n = sizeof(mt_assign_tests) / sizeof(mt_assign_tests[0]);
