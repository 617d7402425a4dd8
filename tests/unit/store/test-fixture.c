/* store/ under raft, deterministically (raftfix.h: raft_fixture with an FSM on a real store
 * per server): elections, partitions, membership, snapshot install, replay. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftfix.h"

static const unsigned ALL3[] = {0, 1, 2};

/* ------------------------------------------------------------------ tests */

/* Three servers elect a leader; what it commits lands byte-identical in every store,
 * refused proposals included (they advance the applied index everywhere alike). */
static void test_replicate(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 0, 0);
    assert_true(l < 3);

    char id[32], data[32];
    for (int k = 0; k < 8; k++) {
        snprintf(id, sizeof(id), "secret-%d", k);
        snprintf(data, sizeof(data), "data-%d", k);
        assert_int_equal(rf_finish(c, rf_propose_secret(c, l, STORE_CREATE, id, data)), 0);
    }
    assert_int_equal(rf_finish(c, rf_propose_service(c, l, STORE_CREATE, "svc-a", 1)), 0);
    assert_int_equal(rf_finish(c, rf_propose_service(c, l, STORE_CREATE, "svc-b", 2)), 0);
    assert_int_equal(rf_finish(c, rf_propose_service(c, l, STORE_UPDATE, "svc-a", 5)), 0);
    assert_int_equal(rf_finish(c, rf_propose_secret(c, l, STORE_DELETE, "secret-3", NULL)), 0);
    /* the store's rules answer the proposer and are the same on every member */
    assert_int_equal(rf_finish(c, rf_propose_secret(c, l, STORE_CREATE, "secret-0", "again")),
                     -EEXIST);
    assert_int_equal(rf_finish(c, rf_propose_service(c, l, STORE_UPDATE, "svc-none", 1)), -ENOENT);
    /* a follower refuses to propose */
    unsigned fo = (l + 1) % 3;
    struct rf_prop *p = rf_propose_secret(c, fo, STORE_PUT, "from-follower", "x");
    assert_true(p->done);
    assert_int_equal(p->status, RAFT_NOTLEADER);

    rf_sync_all(c, l);
    rf_assert_all_same(c, ALL3, 3);
    for (unsigned i = 0; i < 3; i++) {
        rf_assert_secret(c, i, "secret-0", "data-0");
        rf_assert_secret(c, i, "secret-7", "data-7");
        rf_assert_secret(c, i, "secret-3", NULL);
        rf_assert_secret(c, i, "from-follower", NULL);
        assert_int_equal(rf_service_replicas(c, i, "svc-a"), 5);
        assert_int_equal(rf_service_replicas(c, i, "svc-b"), 2);
        assert_int_equal(store_applied_index(c->srv[i].s), store_applied_index(c->srv[l].s));
        assert_int_equal(c->srv[i].fatal, 0);
    }
    assert_true(store_applied_index(c->srv[l].s) >= 14);
}

static void transferred(struct raft_transfer *req)
{
    struct rf_cluster *c = req->data;
    c->xfer_done = true;
}

/* Leadership moves (the leader deposed and another elected; then a leadership transfer, as a
 * demotion of the leader does); writes go on through each new leader and all converge. */
static void test_elect_and_transfer(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 0, 0);
    assert_int_equal(rf_put_secret(c, l, "first", "1"), 0);
    rf_sync_all(c, l);

    raft_fixture_depose(&c->f);
    assert_int_not_equal(raft_state(rf_raft(c, l)), RAFT_LEADER);
    unsigned l2 = (l + 1) % 3;
    raft_fixture_elect(&c->f, l2);
    assert_int_equal(rf_leader(c), l2);
    /* the deposed leader refuses writes */
    assert_int_equal(rf_propose_secret(c, l, STORE_PUT, "stale", "x")->status, RAFT_NOTLEADER);
    assert_int_equal(rf_put_secret(c, l2, "second", "2"), 0);
    rf_sync_all(c, l2);
    rf_assert_all_same(c, ALL3, 3);

    unsigned l3 = (l2 + 1) % 3;
    c->xfer.data = c;
    assert_int_equal(raft_transfer(rf_raft(c, l2), &c->xfer, rf_raft(c, l3)->id, transferred), 0);
    RF_WAIT(c, c->xfer_done && rf_leader(c) == l3);
    assert_int_equal(rf_put_secret(c, l3, "third", "3"), 0);
    rf_sync_all(c, l3);
    rf_assert_all_same(c, ALL3, 3);
    for (unsigned i = 0; i < 3; i++) {
        rf_assert_secret(c, i, "first", "1");
        rf_assert_secret(c, i, "second", "2");
        rf_assert_secret(c, i, "third", "3");
        rf_assert_secret(c, i, "stale", NULL);
    }
}

static bool other_leader(struct rf_cluster *c, unsigned old)
{
    unsigned l = rf_leader(c);
    return l < c->n && l != old;
}

/* The leader cut off from both followers: the two elect a new leader whose writes commit;
 * the old leader's proposal fails and is applied nowhere; once reconnected the old leader
 * drops it and converges on the new writes. */
static void test_partition(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 0, 0);
    assert_int_equal(rf_put_secret(c, l, "before", "b"), 0);
    rf_sync_all(c, l);

    unsigned others[2] = {(l + 1) % 3, (l + 2) % 3};
    rf_cut(c, l, others[0]);
    rf_cut(c, l, others[1]);
    struct rf_prop *lost = rf_propose_secret(c, l, STORE_PUT, "lost", "never");
    assert_false(lost->done); /* accepted: l still believes it leads */

    RF_WAIT(c, other_leader(c, l) && lost->done);
    assert_int_equal(lost->status, RAFT_LEADERSHIPLOST);
    assert_int_not_equal(raft_state(rf_raft(c, l)), RAFT_LEADER);
    unsigned l2 = rf_leader(c);
    assert_true(l2 == others[0] || l2 == others[1]);
    assert_int_equal(rf_put_secret(c, l2, "after", "a"), 0);
    rf_sync_set(c, l2, others, 2);
    rf_assert_all_same(c, others, 2);
    rf_assert_secret(c, others[0], "after", "a");
    rf_assert_secret(c, l, "after", NULL);
    for (unsigned i = 0; i < 3; i++)
        rf_assert_secret(c, i, "lost", NULL);

    rf_heal(c, l, others[0]);
    rf_heal(c, l, others[1]);
    rf_sync_all(c, l2);
    assert_int_equal(rf_leader(c), l2); /* pre-vote: the returning member did not depose it */
    rf_assert_all_same(c, ALL3, 3);
    for (unsigned i = 0; i < 3; i++) {
        rf_assert_secret(c, i, "before", "b");
        rf_assert_secret(c, i, "after", "a");
        rf_assert_secret(c, i, "lost", NULL);
    }
}

static void changed(struct raft_change *req, int status)
{
    struct rf_cluster *c = req->data;
    c->change_done = true;
    c->change_status = status;
}

static int role_of(struct raft *r, raft_id id)
{
    for (unsigned k = 0; k < r->configuration.n; k++)
        if (r->configuration.servers[k].id == id)
            return r->configuration.servers[k].role;
    return -1;
}

#define CHANGE(c, call)                          \
    do {                                         \
        (c)->change_done = false;                \
        (c)->change.data = (c);                  \
        assert_int_equal((call), 0);             \
        RF_WAIT((c), (c)->change_done);          \
        assert_int_equal((c)->change_status, 0); \
    } while (0)

/* A fourth manager joins (spare, then voter once caught up, as manager/members.c) and gets
 * the whole store; then a member is removed and the cluster commits without it. */
static void test_membership(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 0, 0);
    for (int k = 0; k < 5; k++) {
        char id[32];
        snprintf(id, sizeof(id), "early-%d", k);
        assert_int_equal(rf_put_secret(c, l, id, "e"), 0);
    }

    unsigned n4 = rf_add_server(c);
    assert_int_equal(raft_start(rf_raft(c, n4)), 0);
    raft_id id4 = rf_raft(c, n4)->id;
    CHANGE(c, raft_add(rf_raft(c, l), &c->change, id4, rf_raft(c, n4)->address, changed));
    assert_int_equal(role_of(rf_raft(c, l), id4), RAFT_SPARE);
    CHANGE(c, raft_assign(rf_raft(c, l), &c->change, id4, RAFT_VOTER, changed));
    assert_int_equal(role_of(rf_raft(c, l), id4), RAFT_VOTER);

    assert_int_equal(rf_put_secret(c, l, "with-four", "4"), 0);
    rf_sync_all(c, l);
    const unsigned all4[] = {0, 1, 2, 3};
    rf_assert_all_same(c, all4, 4);
    rf_assert_secret(c, n4, "early-0", "e");
    rf_assert_secret(c, n4, "with-four", "4");

    /* remove a follower other than the newcomer */
    unsigned gone = (l + 1) % 3, kept = (l + 2) % 3;
    CHANGE(c, raft_remove(rf_raft(c, l), &c->change, rf_raft(c, gone)->id, changed));
    assert_int_equal(role_of(rf_raft(c, l), rf_raft(c, gone)->id), -1);
    assert_int_equal(rf_raft(c, l)->configuration.n, 3);
    for (unsigned i = 0; i < c->n; i++)
        if (i != gone)
            rf_cut(c, gone, i);
    raft_fixture_kill(&c->f, gone);

    /* leader + newcomer are 2 of the 3 voters left: a quorum only if `gone` no longer counts */
    rf_cut(c, l, kept);
    rf_cut(c, n4, kept);
    assert_int_equal(rf_put_secret(c, l, "without", "w"), 0);
    const unsigned pair[] = {l, n4};
    rf_sync_set(c, l, pair, 2);
    rf_assert_secret(c, n4, "without", "w");
    rf_assert_secret(c, kept, "without", NULL);
    rf_assert_secret(c, gone, "without", NULL);
    assert_int_equal(rf_leader(c), l);

    rf_heal(c, l, kept);
    rf_heal(c, n4, kept);
    const unsigned live[] = {l, kept, n4};
    rf_sync_set(c, l, live, 3);
    rf_assert_all_same(c, live, 3);
}

/* A manager joining a cluster whose log was compacted gets the store as a snapshot, then
 * the entries after it, and becomes a voter with the same data. */
static void test_join_by_snapshot(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 8, 2);
    for (int k = 0; k < 30; k++) {
        char id[32];
        snprintf(id, sizeof(id), "j-%02d", k);
        assert_int_equal(rf_put_secret(c, l, id, "j"), 0);
    }
    assert_true(rf_raft(c, l)->log.snapshot.last_index > 1);

    unsigned n4 = rf_add_server(c);
    raft_set_snapshot_threshold(rf_raft(c, n4), 8);
    raft_set_snapshot_trailing(rf_raft(c, n4), 2);
    assert_int_equal(raft_start(rf_raft(c, n4)), 0);
    raft_id id4 = rf_raft(c, n4)->id;
    CHANGE(c, raft_add(rf_raft(c, l), &c->change, id4, rf_raft(c, n4)->address, changed));
    CHANGE(c, raft_assign(rf_raft(c, l), &c->change, id4, RAFT_VOTER, changed));
    assert_int_equal(role_of(rf_raft(c, l), id4), RAFT_VOTER);
    rf_sync_all(c, l);
    assert_true(c->srv[n4].n_restores >= 1);
    const unsigned all4[] = {0, 1, 2, 3};
    rf_assert_all_same(c, all4, 4);
    rf_assert_secret(c, n4, "j-00", "j");

    assert_int_equal(rf_put_secret(c, l, "j-late", "late"), 0);
    rf_sync_all(c, l);
    rf_assert_all_same(c, all4, 4);
    rf_assert_secret(c, n4, "j-late", "late");
}

/* A follower cut off while the leader snapshots and truncates its log past it: back, it
 * installs the snapshot (store_restore) and ends with the same data; entries the snapshot
 * covers are skipped if applied again; later entries apply on top. */
static void test_snapshot_install(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 8, 2);
    unsigned fo = (l + 1) % 3, other = (l + 2) % 3;
    assert_int_equal(rf_put_secret(c, l, "s-early", "e"), 0);
    rf_sync_all(c, l);
    uint64_t fo_before = store_applied_index(c->srv[fo].s);

    rf_cut(c, fo, l);
    rf_cut(c, fo, other);
    char id[32], data[32];
    for (int k = 0; k < 40; k++) {
        snprintf(id, sizeof(id), "s-%02d", k);
        snprintf(data, sizeof(data), "v-%d", k);
        assert_int_equal(rf_put_secret(c, l, id, data), 0);
        if (k % 5 == 4) {
            snprintf(id, sizeof(id), "s-%02d", k - 2);
            assert_int_equal(rf_finish(c, rf_propose_secret(c, l, STORE_DELETE, id, NULL)), 0);
        }
    }
    assert_int_equal(rf_finish(c, rf_propose_service(c, l, STORE_PUT, "svc", 3)), 0);
    assert_true(c->srv[l].n_snapshots > 0);
    /* the leader no longer holds the entries the follower misses */
    assert_true(rf_raft(c, l)->log.snapshot.last_index > fo_before + 1);
    assert_int_equal(c->srv[fo].n_restores, 0);

    rf_heal(c, fo, l);
    rf_heal(c, fo, other);
    rf_sync_all(c, l);
    assert_true(c->srv[fo].n_restores >= 1);
    rf_assert_all_same(c, ALL3, 3);
    rf_assert_secret(c, fo, "s-00", "v-0");
    rf_assert_secret(c, fo, "s-02", NULL);
    rf_assert_secret(c, fo, "s-39", "v-39");
    assert_int_equal(rf_service_replicas(c, fo, "svc"), 3);
    /* what came through the snapshot never went through the follower's FSM apply */
    size_t via_fsm = 0, on_leader = 0;
    for (size_t k = 0; k < c->srv[fo].n_journal; k++)
        via_fsm += c->srv[fo].journal[k].index > fo_before;
    for (size_t k = 0; k < c->srv[l].n_journal; k++)
        on_leader += c->srv[l].journal[k].index > fo_before;
    assert_true(via_fsm < on_leader);

    /* raft re-applying entries the restored store already holds changes nothing */
    struct rf_dump before = rf_dump_store(c->srv[fo].s);
    uint64_t restored = store_applied_index(c->srv[fo].s);
    size_t replayed = 0;
    for (size_t k = 0; k < c->srv[l].n_journal; k++) {
        const struct rf_jentry *j = &c->srv[l].journal[k];
        if (j->index > restored)
            continue;
        char err[256] = "";
        assert_int_equal(
            store_apply(c->srv[fo].s, j->index, j->payload, j->len, NULL, err, sizeof(err)), 1);
        replayed++;
    }
    assert_true(replayed >= 40);
    struct rf_dump after = rf_dump_store(c->srv[fo].s);
    rf_assert_same_dump(before, after);
    free(before.buf);
    free(after.buf);

    /* and the cluster goes on on top of the snapshot */
    assert_int_equal(rf_put_secret(c, l, "s-late", "late"), 0);
    rf_sync_all(c, l);
    rf_assert_all_same(c, ALL3, 3);
    rf_assert_secret(c, fo, "s-late", "late");
}

/* A restart as raft replays it: the reopened store keeps its applied index, the whole log
 * applied again is a no-op, and an empty store fed the same log ends byte-identical. */
static void test_replay(void **state)
{
    struct rf_cluster *c = *state;
    unsigned l = rf_start(c, 3, 0, 0);
    for (int k = 0; k < 6; k++) {
        char id[32];
        snprintf(id, sizeof(id), "r-%d", k);
        assert_int_equal(rf_put_secret(c, l, id, "r"), 0);
    }
    assert_int_equal(rf_finish(c, rf_propose_secret(c, l, STORE_DELETE, "r-1", NULL)), 0);
    assert_int_equal(rf_finish(c, rf_propose_secret(c, l, STORE_DELETE, "r-1", NULL)), -ENOENT);
    assert_int_equal(rf_finish(c, rf_propose_service(c, l, STORE_CREATE, "svc", 2)), 0);
    rf_sync_all(c, l);
    unsigned x = (l + 1) % 3;
    struct rf_srv *sv = &c->srv[x];
    struct rf_dump d0 = rf_dump_store(sv->s);
    uint64_t applied = store_applied_index(sv->s);
    assert_true(applied > 0);

    /* reopen: what was applied is on disk */
    store_close(sv->s);
    sv->s = rf_open_store(c, sv->dir);
    assert_int_equal(store_applied_index(sv->s), applied);
    struct rf_dump d1 = rf_dump_store(sv->s);
    rf_assert_same_dump(d0, d1);
    free(d1.buf);

    /* raft applies its log again from the start: every entry is skipped */
    for (size_t k = 0; k < sv->n_journal; k++) {
        char err[256] = "";
        assert_int_equal(store_apply(sv->s, sv->journal[k].index, sv->journal[k].payload,
                                     sv->journal[k].len, NULL, err, sizeof(err)),
                         1);
    }
    struct rf_dump d2 = rf_dump_store(sv->s);
    rf_assert_same_dump(d0, d2);
    free(d2.buf);

    /* an empty store given the same log reaches the same state, with the same answers */
    snprintf(c->extra_dir, sizeof(c->extra_dir), "/tmp/test-fixture-XXXXXX");
    assert_non_null(mkdtemp(c->extra_dir));
    store *fresh = rf_open_store(c, c->extra_dir);
    for (size_t k = 0; k < sv->n_journal; k++) {
        char err[256] = "";
        int r = store_apply(fresh, sv->journal[k].index, sv->journal[k].payload, sv->journal[k].len,
                            NULL, err, sizeof(err));
        assert_int_equal(r, sv->journal[k].r);
    }
    struct rf_dump d3 = rf_dump_store(fresh);
    store_close(fresh);
    rf_assert_same_dump(d0, d3);
    free(d3.buf);
    free(d0.buf);

    /* the reopened store keeps following the cluster */
    assert_int_equal(rf_put_secret(c, l, "r-late", "late"), 0);
    rf_sync_all(c, l);
    rf_assert_all_same(c, ALL3, 3);
    rf_assert_secret(c, x, "r-late", "late");
}

/* xorshift32: a fixed seed gives the same schedule (raft_fixture is deterministic too). */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void heal_all(struct rf_cluster *c)
{
    for (unsigned i = 0; i < c->n; i++)
        for (unsigned j = i + 1; j < c->n; j++)
            rf_heal(c, i, j);
}

#define CHAOS_WRITES 200

struct chaos_write {
    char id[16];
    char data[32];
    struct rf_prop *p;
};

static bool all_done(const struct chaos_write *w, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!w[k].p->done)
            return false;
    return true;
}

/* Five servers under a seeded schedule of cut links, isolated leaders and healing, with
 * writes to whoever leads and small snapshots: once healed, every store is byte-identical
 * and holds every write raft acknowledged (an unacknowledged one may or may not be there). */
static void chaos(void **state, uint32_t seed)
{
    struct rf_cluster *c = *state;
    rf_start(c, 5, 16, 4);
    struct chaos_write *w = calloc(CHAOS_WRITES, sizeof(*w));
    assert_non_null(w);
    size_t nw = 0;
    uint32_t s = seed;
    for (int round = 0; round < 60; round++) {
        unsigned a = next_rand(&s) % c->n, b = next_rand(&s) % c->n, l = rf_leader(c);
        switch (next_rand(&s) % 6) {
            case 0:
            case 1:
                if (a != b)
                    rf_cut(c, a, b);
                break;
            case 2:
                heal_all(c);
                break;
            case 3:
                for (unsigned j = 0; l < c->n && j < c->n; j++)
                    if (j != l)
                        rf_cut(c, l, j);
                break;
            default:
                break;
        }
        unsigned n = 1 + next_rand(&s) % 3;
        for (unsigned k = 0; l < c->n && k < n && nw < CHAOS_WRITES; k++, nw++) {
            snprintf(w[nw].id, sizeof(w[nw].id), "w-%03zu", nw);
            snprintf(w[nw].data, sizeof(w[nw].data), "%" PRIu32 "-%d", seed, round);
            w[nw].p = rf_propose_secret(c, l, STORE_PUT, w[nw].id, w[nw].data);
        }
        raft_fixture_step_until_elapsed(&c->f, 50 + next_rand(&s) % 1500);
    }
    heal_all(c);
    RF_WAIT(c, rf_leader(c) < c->n && all_done(w, nw));
    unsigned l = rf_leader(c);
    /* committing this commits everything before it in the leader's log */
    assert_int_equal(rf_put_secret(c, l, "final", "f"), 0);
    rf_sync_all(c, l);
    const unsigned all5[] = {0, 1, 2, 3, 4};
    rf_assert_all_same(c, all5, 5);

    size_t acked = 0;
    unsigned restores = 0;
    for (size_t k = 0; k < nw; k++) {
        if (w[k].p->status != 0)
            continue;
        acked++;
        assert_int_equal(w[k].p->result, 0);
        for (unsigned i = 0; i < c->n; i++)
            rf_assert_secret(c, i, w[k].id, w[k].data);
    }
    for (unsigned i = 0; i < c->n; i++)
        restores += c->srv[i].n_restores;
    print_message("seed %" PRIu32
                  ": %zu writes, %zu acknowledged, term %llu, %u snapshot "
                  "installs\n",
                  seed, nw, acked, (unsigned long long)rf_raft(c, l)->current_term, restores);
    assert_true(acked > 0);
    free(w);
}

static void test_chaos_1(void **state)
{
    chaos(state, 1);
}

static void test_chaos_2(void **state)
{
    chaos(state, 0x5eed);
}

static void test_chaos_3(void **state)
{
    chaos(state, 2024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replicate, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_elect_and_transfer, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_partition, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_membership, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_join_by_snapshot, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_replay, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_1, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_2, rf_setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_3, rf_setup, rf_teardown),
    };
    return cmocka_run_group_tests_name("store-fixture", tests, NULL, NULL);
}
