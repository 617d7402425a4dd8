/* manager/ orchestrator: rolling updates against tasks that wait for a node (an update that
 * fixes an unschedulable service applies; a slot that cannot be placed does not hold the
 * others back) and reservations of global tasks counted once. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tests.h"

#define GIB (1024LL * 1024 * 1024)
#define CPU 1000000000LL
#define ST(x) SWARM__TASK_STATE__TASK_##x

static void start(struct mt *t)
{
    mt_start_ok(t, true);
    mt_node_availability(t, mgr_node_id(t->m), SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
}

struct want {
    const char *svc;
    uint64_t version;
    size_t running, pending;
};

/* Live tasks of the given spec version: running and pending counts as wanted. */
static bool counts(struct mt *t, void *ud)
{
    struct want *w = ud;
    struct mgr_objs o;
    size_t running = 0, pending = 0;
    mt_service_tasks(t, w->svc, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        if (task->desired_state > ST(RUNNING) || task->state >= ST(COMPLETE) ||
            task->spec_version != w->version)
            continue;
        running += task->state == ST(RUNNING);
        pending += task->state == ST(PENDING) && strstr(task->message, "no suitable node");
    }
    mgr__objs_free(&o);
    return running == w->running && pending == w->pending;
}

static void update_spec(struct mt *t, const char *svc, const struct mt_svc *spec)
{
    Swarm__UpdateServiceRequest up = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    up.id = (char *)svc;
    up.task = mt_svc_spec(spec);
    mt_service_update(t, &up);
    mt_svc_spec_free(up.task);
}

/* A service that fits nowhere is fixed by an update: its pending tasks are replaced at
 * once, not held back by the one-at-a-time rule. */
static void test_update_unschedulable(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 1 * GIB);
    char s[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "s", .replicas = 2, .reserve_memory = 8 * GIB}, s);
    struct want w = {s, 1, 0, 2};
    assert_true(mt_wait_for(t, counts, &w, MT_WAIT_MS));
    update_spec(t, s, &(struct mt_svc){.reserve_memory = 0});
    w = (struct want){s, 2, 2, 0};
    assert_true(mt_wait_for(t, counts, &w, MT_WAIT_MS));
}

/* One slot cannot be placed (its node left); the running slots still move to the new spec,
 * one at a time. */
static void test_pending_slot_does_not_block(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a"), *b = mt_node_add(t, "b");
    a->auto_run = b->auto_run = true;
    mt_node_connect(a, 4 * CPU, 4 * GIB);
    mt_node_connect(b, 4 * CPU, 4 * GIB);
    char s[SW_ID_LEN + 1];
    /* 2 GiB each: two fit on a node */
    mt_svc_create(t, &(struct mt_svc){.name = "s", .replicas = 3, .reserve_memory = 2 * GIB}, s);
    assert_true(mt_wait_running(t, s, 3));
    /* b goes away: its task(s) cannot all move to a, one stays pending */
    mt_node_availability(t, b->id, SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN);
    struct want w = {s, 1, 2, 1};
    assert_true(mt_wait_for(t, counts, &w, MT_WAIT_MS));
    update_spec(t, s, &(struct mt_svc){.reserve_memory = 2 * GIB, .env = "V=2"});
    w = (struct want){s, 2, 2, 1};
    assert_true(mt_wait_for(t, counts, &w, MT_WAIT_MS));
}

/* A pending global task is bound to its node but holds nothing there yet: 600 MiB fits a
 * 1 GiB node (it was refused as if reserved twice). */
static void test_global_reservation_once(void **state)
{
    struct mt *t = *state;
    start(t);
    struct mt_node *a = mt_node_add(t, "a");
    a->auto_run = true;
    mt_node_connect(a, 4 * CPU, 1 * GIB);
    char g[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "g", .global = true, .reserve_memory = 600LL << 20},
                  g);
    assert_true(mt_wait_running(t, g, 1));
    /* a second one does not fit next to it */
    char h[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "h", .global = true, .reserve_memory = 600LL << 20},
                  h);
    struct want w = {h, 1, 0, 1};
    assert_true(mt_wait_for(t, counts, &w, MT_WAIT_MS));
}

/* A name wins over an ID prefix (Docker's order: full ID, exact name, unique prefix). */
static void test_name_before_prefix(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    char a[SW_ID_LEN + 1], b[SW_ID_LEN + 1], prefix[3];
    mt_secret_create(t, "first", "x", a);
    snprintf(prefix, sizeof(prefix), "%.2s", a);
    mt_secret_create(t, prefix, "y", b); /* named like the start of the other's ID */
    Swarm__GetSecretRequest req = SWARM__GET_SECRET_REQUEST__INIT;
    req.id = prefix;
    struct mt_reply r;
    assert_int_equal(mt_call(t, "Control.GetSecret", &req.base, &r), 0);
    Swarm__SecretResponse *resp = swarm__secret_response__unpack(NULL, r.len, r.payload);
    assert_non_null(resp);
    assert_string_equal(resp->secret->id, b);
    swarm__secret_response__free_unpacked(resp, NULL);
    mt_reply_clear(&r);
    /* a unique prefix still finds the other */
    char p8[9];
    snprintf(p8, sizeof(p8), "%.8s", a);
    req.id = p8;
    assert_int_equal(mt_call(t, "Control.GetSecret", &req.base, &r), 0);
    mt_reply_clear(&r);
}

/* Names are unique: a second create of a name is refused, two at once let exactly one
 * through, and a removed object's name can be used again. */
static void test_unique_names(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    char a[SW_ID_LEN + 1];
    mt_secret_create(t, "dup", "x", a);
    Swarm__CreateSecretRequest req = SWARM__CREATE_SECRET_REQUEST__INIT;
    req.name = "dup";
    req.data.data = (uint8_t *)"y";
    req.data.len = 1;
    struct mt_reply r, r2;
    assert_int_equal(mt_call(t, "Control.CreateSecret", &req.base, &r), -EEXIST);
    assert_non_null(strstr(r.error, "already exists"));
    mt_reply_clear(&r);
    req.name = "twin";
    mt_call_async(t, "Control.CreateSecret", &req.base, &r);
    mt_call_async(t, "Control.CreateSecret", &req.base, &r2);
    assert_true(mt_run_until(t, &r.done, MT_WAIT_MS));
    assert_true(mt_run_until(t, &r2.done, MT_WAIT_MS));
    assert_true((r.status == 0) != (r2.status == 0));
    assert_true(r.status == -EEXIST || r2.status == -EEXIST);
    mt_reply_clear(&r);
    mt_reply_clear(&r2);
    Swarm__GetSecretRequest rm = SWARM__GET_SECRET_REQUEST__INIT;
    rm.id = "dup";
    assert_int_equal(mt_call(t, "Control.RemoveSecret", &rm.base, &r), 0);
    mt_reply_clear(&r);
    req.name = "dup";
    assert_int_equal(mt_call(t, "Control.CreateSecret", &req.base, &r), 0);
    mt_reply_clear(&r);

    char svc[SW_ID_LEN + 1];
    mt_svc_create(t, &(struct mt_svc){.name = "web", .replicas = 0}, svc);
    Swarm__CreateServiceRequest sreq = SWARM__CREATE_SERVICE_REQUEST__INIT;
    sreq.name = "web";
    sreq.task = mt_svc_spec(&(struct mt_svc){.name = "web"});
    assert_int_equal(mt_call(t, "Control.CreateService", &sreq.base, &r), -EEXIST);
    mt_reply_clear(&r);
    mt_svc_spec_free(sreq.task);
}

const struct CMUnitTest mt_update_tests[] = {
    cmocka_unit_test_setup_teardown(test_update_unschedulable, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_pending_slot_does_not_block, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_global_reservation_once, mt_setup, mt_node_teardown),
    cmocka_unit_test_setup_teardown(test_name_before_prefix, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_unique_names, mt_setup, mt_teardown),
};
const size_t mt_update_n = sizeof(mt_update_tests) / sizeof(mt_update_tests[0]);
