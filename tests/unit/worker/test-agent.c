/* worker/ agent: the session and heartbeats against a fake dispatcher built on net_server
 * (ready, heartbeat pace, managers adopted, reconnect after the server comes back, refusal),
 * and against the real manager (the node becomes Ready). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "fake.h"
#include "worker/internal.h"
#include "wt.h"

/* ------------------------------------------------------------------ tests */

static void test_agent_session_heartbeats(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct fake f;
    /* state dir naming the fake, which shows a manager certificate of this cluster */
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    wt_cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    wt_fake_init(&f, t, &c, c.cluster_id);
    f.extra_manager = "127.0.0.2:2377";
    char path[256], line[100];
    wt_write_managers(&c, &f.bound, path, sizeof(path), line, sizeof(line));

    struct agent_run ar;
    wt_agent_start(&ar, t, c.dir);
    assert_string_equal(wrk_agent_node_id(ar.a), c.worker_id);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    if (ar.status != 0)
        fail_msg("ready: %d %s", ar.status, ar.err);
    assert_int_equal(f.sessions, 1);
    assert_string_equal(f.hostname, "wt-agent");
    assert_string_equal(f.os, "linux");
    assert_string_equal(f.addr, "127.0.0.1:2377");
    assert_true(f.arch[0] != '\0');
    assert_true(f.nano_cpus >= 1000000000LL && f.nano_cpus % 1000000000LL == 0);
    assert_true(f.memory > 0);

    /* heartbeats at about the period (200 ms ± 20%) */
    uint64_t t0 = sw_now_monotonic_ns() / SW_NSEC_PER_MSEC;
    mt_run_for(t, 1500);
    unsigned n = f.heartbeats;
    if (n < 5 || n > 10)
        fail_msg("%u heartbeats in 1.5 s at a 200 ms period", n);
    assert_int_equal(f.bad_heartbeats, 0);
    assert_true(f.hb_ms[0] - t0 < 300);
    for (unsigned i = 1; i < n; i++) {
        uint64_t gap = f.hb_ms[i] - f.hb_ms[i - 1];
        if (gap < 140 || gap > 320)
            fail_msg("heartbeat %u came %llu ms after the previous one", i,
                     (unsigned long long)gap);
    }

    /* the managers the session named are kept for the next start */
    char *text = NULL;
    assert_int_equal(sw_read_file(path, 4096, &text, NULL), 0);
    char want[200];
    snprintf(want, sizeof(want), "%s127.0.0.2:2377\n", line);
    assert_string_equal(text, want);
    free(text);

    wt_agent_stop(&ar, t);
    unsigned after = f.heartbeats;
    mt_run_for(t, 500);
    assert_int_equal(f.heartbeats, after); /* stopped means silent */
    assert_int_equal(ar.ready_calls, 1);
    wt_fake_finish(&f);
    wt_cluster_finish(&c);
}

static void test_agent_reconnects(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct fake f;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    wt_cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    wt_fake_init(&f, t, &c, c.cluster_id);
    char path[256], line[100];
    wt_write_managers(&c, &f.bound, path, sizeof(path), line, sizeof(line));

    struct agent_run ar;
    wt_agent_start(&ar, t, c.dir);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    assert_int_equal(ar.status, 0);
    mt_run_for(t, 450);
    assert_true(f.heartbeats >= 1);

    /* the manager goes away for a while, then comes back on the same port */
    struct sw_addr port = f.bound;
    wt_fake_close(&f);
    mt_run_for(t, 700);
    unsigned before = f.heartbeats;
    wt_fake_listen(&f, &port);
    uint64_t t0 = sw_now_monotonic_ns();
    struct {
        bool flag;
    } w = {0};
    while (!w.flag && sw_now_monotonic_ns() - t0 < 10 * SW_NSEC_PER_SEC) {
        mt_run_for(t, 50);
        w.flag = f.sessions == 2 && f.heartbeats > before + 1;
    }
    if (!w.flag)
        fail_msg("no new session after the manager came back (%u sessions, %u heartbeats)",
                 f.sessions, f.heartbeats - before);
    /* heartbeats name the new session; ready fired once */
    unsigned last = SW_MIN(f.heartbeats, (unsigned)MAX_HB) - 1;
    assert_string_equal(f.hb_session[last], "session-2");
    assert_int_equal(f.bad_heartbeats, 0);
    assert_int_equal(ar.ready_calls, 1);

    wt_agent_stop(&ar, t);
    wt_fake_finish(&f);
    wt_cluster_finish(&c);
}

static void test_agent_refused(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct fake f;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    wt_cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    /* a manager of another cluster under the same root: not ours */
    char other[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(other), 0);
    wt_fake_init(&f, t, &c, other);
    char path[256], line[100];
    wt_write_managers(&c, &f.bound, path, sizeof(path), line, sizeof(line));

    struct agent_run ar;
    wt_agent_start(&ar, t, c.dir);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    assert_int_equal(ar.status, -EPERM);
    print_message("%s\n", ar.err);
    assert_true(ar.err[0] != '\0');
    assert_int_equal(f.sessions, 0);
    wt_agent_stop(&ar, t);
    wt_fake_finish(&f);
    wt_cluster_finish(&c);
}

static void test_agent_not_a_worker(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    wt_cluster_init(&c, t, PKI_ROLE_MANAGER, &placeholder);
    struct wrk_config cfg = {.state_dir = c.dir};
    wrk_agent *a = NULL;
    char err[512];
    assert_int_equal(wrk_agent_start(&t->loop, &cfg, wt_on_ready, NULL, &a, err, sizeof(err)),
                     -EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "not a worker"));
    /* unless asked: a manager node runs its tasks through an agent as well */
    struct fake f;
    wt_fake_init(&f, t, &c, c.cluster_id);
    struct agent_run ar;
    char run[256];
    snprintf(run, sizeof(run), "%s/run", t->dir);
    struct wrk_config mc = {.state_dir = c.dir,
                            .manager = f.bound,
                            .manager_set = true,
                            .run_dir = run,
                            .allow_manager = true};
    wt_agent_start_cfg(&ar, t, &mc);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    assert_int_equal(ar.status, 0);
    assert_int_equal(f.sessions, 1);
    wt_agent_stop(&ar, t);
    wt_fake_finish(&f);
    /* and a dir without a node */
    cfg.state_dir = t->dir;
    assert_int_equal(wrk_agent_start(&t->loop, &cfg, wt_on_ready, NULL, &a, err, sizeof(err)),
                     -ENOENT);
    wt_cluster_finish(&c);
}

static void on_role(wrk_agent *a, enum pki_role role, void *ud)
{
    int *got = ud;
    *got = role == PKI_ROLE_MANAGER ? 2 : 1;
}

/* A promotion stopped by a crash after the manager certificate was written and before the
 * node's state said manager: the agent finds a manager's certificate next to a worker's
 * node.conf and, once in session, hands the change of role on. */
static void test_agent_finishes_promotion(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct sw_addr placeholder;
    char err[512], run[256];
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    wt_cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    pki_key *key = NULL;
    char *cert = wt_sign(&c, c.worker_id, c.cluster_id, PKI_ROLE_MANAGER, &key);
    assert_int_equal(pki_node_state_replace_cert(c.dir, cert, key, err, sizeof(err)), 0);
    free(cert);
    pki_key_free(key);
    struct fake f;
    wt_fake_init(&f, t, &c, c.cluster_id);
    int got = 0;
    snprintf(run, sizeof(run), "%s/run", t->dir);
    struct wrk_config cfg = {.state_dir = c.dir,
                             .manager = f.bound,
                             .manager_set = true,
                             .run_dir = run,
                             .role_changed = on_role,
                             .renewed_userdata = &got};
    struct agent_run ar;
    wt_agent_start_cfg(&ar, t, &cfg);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    assert_int_equal(ar.status, 0);
    assert_int_equal(got, 2);
    wt_agent_stop(&ar, t);
    wt_fake_finish(&f);
    wt_cluster_finish(&c);
}

/* The renewal point lies between 50% and 80% of the validity, for any span. */
static void test_renew_point(void **state)
{
    (void)state;
    assert_int_equal(wrk__renew_at_ns(1000, 2000, 0), 1500);
    assert_int_equal(wrk__renew_at_ns(1000, 2000, UINT32_MAX), 1800);
    assert_int_equal(wrk__renew_at_ns(1000, 2000, UINT32_MAX / 2), 1649);
    /* a certificate that ends before it starts: renew now */
    assert_int_equal(wrk__renew_at_ns(2000, 1000, 7), 2000);
    assert_int_equal(wrk__renew_at_ns(2000, 2000, 7), 2000);
    /* twenty years in ns: no overflow */
    const uint64_t nb = 1700000000ULL * SW_NSEC_PER_SEC;
    const uint64_t span = 20ULL * 365 * 24 * 3600 * SW_NSEC_PER_SEC;
    for (uint32_t rnd = 0; rnd < UINT32_MAX - 1000003; rnd += 1000003) {
        uint64_t at = wrk__renew_at_ns(nb, nb + span, rnd);
        assert_true(at >= nb + span / 2);
        assert_true(at <= nb + span / 10 * 8);
    }
}

const struct CMUnitTest wt_agent_tests[] = {
    cmocka_unit_test_setup_teardown(test_agent_session_heartbeats, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_reconnects, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_refused, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_not_a_worker, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_finishes_promotion, mt_setup, mt_teardown),
    cmocka_unit_test(test_renew_point),
};
const size_t wt_agent_n = SW_ARRAY_SIZE(wt_agent_tests);
