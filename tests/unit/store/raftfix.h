/* Test harness for store/ under raft: canonical/raft's raft_fixture (in-memory servers on
 * fixture time, so deterministic) whose FSM applies sealed proposals to a real store per
 * server, framed as manager/raft.c frames them; proposals, bounded waits, store dumps. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <raft.h>
#include <raft/fixture.h>

#include "store/store.h"

#define RF_NSRV 5
/* fixture (simulated) milliseconds anything awaited may take */
#define RF_WAIT_MS 60000

/* An entry the FSM applied: its raft index, the sealed proposal and store_apply's answer. */
struct rf_jentry {
    uint64_t index;
    uint8_t *payload;
    size_t len;
    int r;
};

struct rf_cluster;

struct rf_srv {
    struct raft_fsm fsm;
    struct rf_cluster *c;
    unsigned i;
    char dir[64];
    store *s;
    struct rf_jentry *journal; /* every entry applied, in order */
    size_t n_journal;
    unsigned n_snapshots, n_restores;
    int fatal; /* a store error the manager would stop on */
};

/* A proposal: raft keeps the request until its callback, so it lives until rf_teardown. */
struct rf_prop {
    struct raft_apply req;
    struct rf_prop *next;
    bool done;
    int status; /* raft's: 0 once committed and applied on the proposer */
    int result; /* the store's answer: 0, -EEXIST, -ENOENT, -EINVAL */
};

struct rf_cluster {
    struct raft_fixture f;
    bool fixture_inited;
    struct pki_aead_key dek; /* every store's: one cluster, one data key */
    struct rf_srv srv[RF_NSRV];
    unsigned n;
    uint64_t next_request_id;
    struct rf_prop *props;
    struct raft_change change; /* for tests' membership changes */
    bool change_done;
    int change_status;
    struct raft_transfer xfer;
    bool xfer_done;
    char extra_dir[64]; /* a test's own store dir, removed by rf_teardown */
};

/* The first store error any server hit (the manager would stop on it), or 0. */
int rf_any_fatal(struct rf_cluster *c);

/* Step the fixture until cond holds (fixture time, so deterministic), then assert it. */
#define RF_WAIT(c, cond)                                                                     \
    do {                                                                                     \
        raft_time t0_ = raft_fixture_time(&(c)->f);                                          \
        while (!(cond) && raft_fixture_time(&(c)->f) - t0_ < RF_WAIT_MS && !rf_any_fatal(c)) \
            raft_fixture_step(&(c)->f);                                                      \
        assert_int_equal(rf_any_fatal(c), 0);                                                \
        assert_true(cond);                                                                   \
    } while (0)

/* cmocka setup/teardown: an empty fixture and a fresh data key; teardown closes raft, the
 * stores and removes their dirs. */
int rf_setup(void **state);
int rf_teardown(void **state);

store *rf_open_store(struct rf_cluster *c, const char *dir);
struct raft *rf_raft(struct rf_cluster *c, unsigned i);
/* raft 0.15's raft_fixture_disconnect/reconnect act on one direction (i to j) only: these
 * cut and heal both. */
void rf_cut(struct rf_cluster *c, unsigned i, unsigned j);
void rf_heal(struct rf_cluster *c, unsigned i, unsigned j);

/* A new server with its own empty store in the fixture (not started, not in the config). */
unsigned rf_add_server(struct rf_cluster *c);
/* n voters bootstrapped and started; returns the elected leader. threshold 0 keeps raft's
 * snapshot defaults. */
unsigned rf_start(struct rf_cluster *c, unsigned n, unsigned threshold, unsigned trailing);
/* The live leader with the highest term, or c->n. */
unsigned rf_leader(struct rf_cluster *c);
/* Wait until every server of set has applied all the leader l has applied. */
void rf_sync_set(struct rf_cluster *c, unsigned l, const unsigned *set, size_t n);
void rf_sync_all(struct rf_cluster *c, unsigned l);

/* Seal actions with server i's store and hand them to its raft (as mgr__propose). The
 * proposal fails at once (done, status != 0) when i is not the leader. */
struct rf_prop *rf_propose(struct rf_cluster *c, unsigned i, const struct store_action *a,
                           size_t n);
/* One secret action (data NULL for a delete) / one service action. */
struct rf_prop *rf_propose_secret(struct rf_cluster *c, unsigned i, enum store_action_kind kind,
                                  const char *id, const char *data);
struct rf_prop *rf_propose_service(struct rf_cluster *c, unsigned i, enum store_action_kind kind,
                                   const char *id, uint64_t replicas);
/* Wait for a proposal to commit; returns the store's answer. */
int rf_finish(struct rf_cluster *c, struct rf_prop *p);
int rf_put_secret(struct rf_cluster *c, unsigned i, const char *id, const char *data);

/* Every table's objects (opened) in key order and the applied index; buf is malloc'd. */
struct rf_dump {
    char *buf;
    size_t len;
};
struct rf_dump rf_dump_store(store *s);
void rf_assert_same_dump(struct rf_dump a, struct rf_dump b);
/* Stores hold byte-identical objects and the same applied index. */
void rf_assert_same_store(struct rf_cluster *c, unsigned i, unsigned j);
void rf_assert_all_same(struct rf_cluster *c, const unsigned *set, size_t n);
/* Server i holds secret id with data want (want NULL: holds none). */
void rf_assert_secret(struct rf_cluster *c, unsigned i, const char *id, const char *want);
uint64_t rf_service_replicas(struct rf_cluster *c, unsigned i, const char *id);
