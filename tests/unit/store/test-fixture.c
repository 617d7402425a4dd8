/* store/ under raft, deterministically: canonical/raft's raft_fixture (in-memory servers on
 * fixture time) with an FSM that applies sealed proposals to a real store per server, framed
 * as manager/raft.c frames them: elections, partitions, membership, snapshot install, replay. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <raft.h>
#include <raft/fixture.h>

#include "proto/swarm.pb-c.h"
#include "store/store.h"

#define CLUSTER "c0000000000000000000000001"
#define NSRV 5
/* manager/raft.c's entry: "SWE1" | payload length (big-endian u32) | sealed proposal | zero
 * padding to a multiple of 8 */
#define ENTRY_MAGIC "SWE1"
#define ENTRY_HEADER 8
/* fixture (simulated) milliseconds anything awaited may take */
#define WAIT_MS 60000

/* An entry the FSM applied: its raft index, the sealed proposal and store_apply's answer. */
struct jentry {
    uint64_t index;
    uint8_t *payload;
    size_t len;
    int r;
};

struct cluster;

struct srv {
    struct raft_fsm fsm;
    struct cluster *c;
    unsigned i;
    char dir[64];
    store *s;
    struct jentry *journal; /* every entry applied, in order */
    size_t n_journal;
    unsigned n_snapshots, n_restores;
    int fatal; /* a store error the manager would stop on */
};

/* A proposal: raft keeps the request until its callback, so it lives until teardown. */
struct prop {
    struct raft_apply req;
    struct prop *next;
    bool done;
    int status;
    int result;
};

struct cluster {
    struct raft_fixture f;
    bool fixture_inited;
    struct pki_aead_key dek;
    struct srv srv[NSRV];
    unsigned n;
    uint64_t next_request_id;
    struct prop *props;
    struct raft_change change;
    bool change_done;
    int change_status;
    struct raft_transfer xfer;
    bool xfer_done;
    char extra_dir[64];
};

/* ------------------------------------------------------------------ helpers */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static store *open_store(struct cluster *c, const char *dir)
{
    char err[256] = "";
    store *s = NULL;
    int r = store_open(dir, CLUSTER, &c->dek, &s, err, sizeof(err));
    if (r < 0)
        fail_msg("store_open %s: %d %s", dir, r, err);
    return s;
}

static struct raft *R(struct cluster *c, unsigned i)
{
    return raft_fixture_get(&c->f, i);
}

/* Step the fixture until cond holds (fixture time, so deterministic), then assert it. */
#define WAIT(c, cond)                                                                  \
    do {                                                                               \
        raft_time t0_ = raft_fixture_time(&(c)->f);                                    \
        while (!(cond) && raft_fixture_time(&(c)->f) - t0_ < WAIT_MS && !any_fatal(c)) \
            raft_fixture_step(&(c)->f);                                                \
        assert_int_equal(any_fatal(c), 0);                                             \
        assert_true(cond);                                                             \
    } while (0)

static int any_fatal(struct cluster *c)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->srv[i].fatal)
            return c->srv[i].fatal;
    return 0;
}

/* raft 0.15's raft_fixture_disconnect/reconnect act on one direction (i to j) only: a
 * partition needs both. */
static void cut(struct cluster *c, unsigned i, unsigned j)
{
    raft_fixture_disconnect(&c->f, i, j);
    raft_fixture_disconnect(&c->f, j, i);
}

static void heal(struct cluster *c, unsigned i, unsigned j)
{
    raft_fixture_reconnect(&c->f, i, j);
    raft_fixture_reconnect(&c->f, j, i);
}

/* ------------------------------------------------------------------ the FSM */

static int entry_payload(const struct raft_buffer *buf, const uint8_t **ret, size_t *ret_len)
{
    const uint8_t *p = buf->base;
    if (buf->len < ENTRY_HEADER || memcmp(p, ENTRY_MAGIC, 4) != 0)
        return -EBADMSG;
    size_t n = ((size_t)p[4] << 24) | ((size_t)p[5] << 16) | ((size_t)p[6] << 8) | p[7];
    if (n > buf->len - ENTRY_HEADER)
        return -EBADMSG;
    *ret = p + ENTRY_HEADER;
    *ret_len = n;
    return 0;
}

static int journal_add(struct srv *sv, uint64_t index, const uint8_t *payload, size_t len, int r)
{
    struct jentry *j = realloc(sv->journal, (sv->n_journal + 1) * sizeof(*j));
    if (!j)
        return -ENOMEM;
    sv->journal = j;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, payload, len);
    j[sv->n_journal++] = (struct jentry){.index = index, .payload = copy, .len = len, .r = r};
    return 0;
}

/* As manager/raft.c: the entry's index is the last applied one + 1 (raft applies
 * configuration entries and barriers without the FSM). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct srv *sv = fsm->data;
    uint64_t index = raft_last_applied(R(sv->c, sv->i)) + 1;
    char err[256] = "";
    const uint8_t *payload = NULL;
    size_t len = 0;
    int r = entry_payload(buf, &payload, &len);
    if (r >= 0)
        r = store_apply(sv->s, index, payload, len, NULL, err, sizeof(err));
    if (r >= 0 || r == -EEXIST || r == -ENOENT || r == -EINVAL) {
        int jr = journal_add(sv, index, payload, len, r);
        if (jr < 0)
            sv->fatal = jr;
        *result = (void *)(intptr_t)(r > 0 ? 0 : r);
        return 0;
    }
    sv->fatal = r;
    return RAFT_IOERR;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct srv *sv = fsm->data;
    uint8_t *data;
    size_t len;
    int r = store_snapshot(sv->s, &data, &len);
    if (r < 0) {
        sv->fatal = r;
        return RAFT_NOMEM;
    }
    struct raft_buffer *b = raft_malloc(sizeof(*b));
    if (!b) {
        free(data);
        return RAFT_NOMEM;
    }
    b->base = data;
    b->len = len;
    *bufs = b;
    *n_bufs = 1;
    sv->n_snapshots++;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++)
            free((*bufs)[i].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct srv *sv = fsm->data;
    char err[256] = "";
    int r = store_restore(sv->s, buf->base, buf->len, err, sizeof(err));
    if (r < 0) {
        sv->fatal = r;
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    sv->n_restores++;
    return 0;
}

/* ------------------------------------------------------------------ cluster */

static int setup(void **state)
{
    struct cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    assert_int_equal(pki_aead_key_generate(&c->dek), 0);
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    c->fixture_inited = true;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    if (c->fixture_inited)
        raft_fixture_close(&c->f);
    for (unsigned i = 0; i < NSRV; i++) {
        struct srv *sv = &c->srv[i];
        store_close(sv->s);
        rm_rf(sv->dir);
        for (size_t k = 0; k < sv->n_journal; k++)
            free(sv->journal[k].payload);
        free(sv->journal);
    }
    rm_rf(c->extra_dir);
    while (c->props) {
        struct prop *p = c->props;
        c->props = p->next;
        free(p);
    }
    pki_aead_key_clear(&c->dek);
    free(c);
    return 0;
}

/* A new server with its own empty store in the fixture (not started, not in the config). */
static unsigned add_server(struct cluster *c)
{
    assert_true(c->n < NSRV);
    unsigned i = c->n;
    struct srv *sv = &c->srv[i];
    sv->c = c;
    sv->i = i;
    snprintf(sv->dir, sizeof(sv->dir), "/tmp/test-fixture-XXXXXX");
    assert_non_null(mkdtemp(sv->dir));
    sv->s = open_store(c, sv->dir);
    sv->fsm = (struct raft_fsm){
        .version = 2,
        .data = sv,
        .apply = fsm_apply,
        .snapshot = fsm_snapshot,
        .snapshot_finalize = fsm_snapshot_finalize,
        .restore = fsm_restore,
    };
    c->n++;
    assert_int_equal(raft_fixture_grow(&c->f, &sv->fsm), 0);
    /* as the manager: a member cut off and back does not depose a working leader */
    raft_set_pre_vote(R(c, i), true);
    return i;
}

/* n voters bootstrapped and started; returns the elected leader. threshold 0 keeps raft's
 * snapshot defaults. */
static unsigned start(struct cluster *c, unsigned n, unsigned threshold, unsigned trailing)
{
    for (unsigned i = 0; i < n; i++) {
        add_server(c);
        if (threshold) {
            raft_set_snapshot_threshold(R(c, i), threshold);
            raft_set_snapshot_trailing(R(c, i), trailing);
        }
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
    int r = raft_fixture_bootstrap(&c->f, &conf);
    raft_configuration_close(&conf);
    assert_int_equal(r, 0);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&c->f, WAIT_MS));
    return raft_fixture_leader_index(&c->f);
}

/* The live leader with the highest term (the fixture's own view also wants it stable). */
static unsigned leader(struct cluster *c)
{
    unsigned best = c->n;
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i) || raft_state(R(c, i)) != RAFT_LEADER)
            continue;
        if (best == c->n || R(c, i)->current_term > R(c, best)->current_term)
            best = i;
    }
    return best;
}

static bool applied_at_least(struct cluster *c, const unsigned *set, size_t n, raft_index index)
{
    for (size_t k = 0; k < n; k++)
        if (raft_last_applied(R(c, set[k])) < index)
            return false;
    return true;
}

/* Every server of set applies all the leader has applied. */
static void sync_set(struct cluster *c, unsigned l, const unsigned *set, size_t n)
{
    raft_index index = raft_last_applied(R(c, l));
    WAIT(c, applied_at_least(c, set, n, index));
}

static void sync_all(struct cluster *c, unsigned l)
{
    unsigned set[NSRV];
    for (unsigned i = 0; i < c->n; i++)
        set[i] = i;
    sync_set(c, l, set, c->n);
}

/* ------------------------------------------------------------------ proposals */

static void applied_cb(struct raft_apply *req, int status, void *result)
{
    struct prop *p = req->data;
    p->done = true;
    p->status = status;
    p->result = status == 0 ? (int)(intptr_t)result : 0;
}

/* Seal actions with server i's store and hand them to its raft (as mgr__propose). The
 * proposal may fail at once (p->done, p->status != 0) when i is not the leader. */
static struct prop *propose(struct cluster *c, unsigned i, const struct store_action *a, size_t n)
{
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(store_proposal_seal(c->srv[i].s, ++c->next_request_id, a, n, &sealed, &len),
                     0);
    size_t total = (ENTRY_HEADER + len + 7) & ~(size_t)7;
    struct raft_buffer buf = {.base = raft_calloc(1, total), .len = total};
    assert_non_null(buf.base);
    uint8_t *e = buf.base;
    memcpy(e, ENTRY_MAGIC, 4);
    e[4] = (uint8_t)(len >> 24);
    e[5] = (uint8_t)(len >> 16);
    e[6] = (uint8_t)(len >> 8);
    e[7] = (uint8_t)len;
    memcpy(e + ENTRY_HEADER, sealed, len);
    free(sealed);

    struct prop *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->next = c->props;
    c->props = p;
    p->req.data = p;
    int r = raft_apply(R(c, i), &p->req, &buf, 1, applied_cb);
    if (r != 0) {
        raft_free(buf.base);
        p->done = true;
        p->status = r;
    }
    return p;
}

static uint8_t *pack_secret(const char *id, const char *data, size_t *ret_len)
{
    Swarm__Secret s = SWARM__SECRET__INIT;
    s.id = (char *)id;
    s.name = (char *)id;
    s.data.data = (uint8_t *)data;
    s.data.len = strlen(data);
    size_t len = swarm__secret__get_packed_size(&s);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    swarm__secret__pack(&s, buf);
    *ret_len = len;
    return buf;
}

/* One secret action (data NULL for a delete) proposed on server i. */
static struct prop *propose_secret(struct cluster *c, unsigned i, enum store_action_kind kind,
                                   const char *id, const char *data)
{
    struct store_action a = {.kind = kind, .table = STORE_SECRETS, .id = id};
    uint8_t *v = NULL;
    if (data) {
        v = pack_secret(id, data, &a.len);
        a.value = v;
    }
    struct prop *p = propose(c, i, &a, 1);
    free(v);
    return p;
}

static struct prop *propose_service(struct cluster *c, unsigned i, enum store_action_kind kind,
                                    const char *id, uint64_t replicas)
{
    Swarm__Service s = SWARM__SERVICE__INIT;
    s.id = (char *)id;
    s.name = (char *)id;
    s.replicas = replicas;
    size_t len = swarm__service__get_packed_size(&s);
    uint8_t *v = malloc(len ? len : 1);
    assert_non_null(v);
    swarm__service__pack(&s, v);
    struct store_action a = {
        .kind = kind, .table = STORE_SERVICES, .id = id, .value = v, .len = len};
    struct prop *p = propose(c, i, &a, 1);
    free(v);
    return p;
}

/* Wait for a proposal to commit; returns the store's answer (0, -EEXIST, -ENOENT). */
static int finish(struct cluster *c, struct prop *p)
{
    WAIT(c, p->done);
    assert_int_equal(p->status, 0);
    return p->result;
}

static int put_secret(struct cluster *c, unsigned i, const char *id, const char *data)
{
    return finish(c, propose_secret(c, i, STORE_PUT, id, data));
}

/* ------------------------------------------------------------------ reading stores */

struct dump {
    char *buf;
    size_t len;
};

static int dump_one(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    FILE *fp = userdata;
    uint64_t n = len;
    fwrite(id, 1, strlen(id) + 1, fp);
    fwrite(&n, sizeof(n), 1, fp);
    fwrite(value, 1, len, fp);
    return 0;
}

/* Every table's objects (opened) in key order, and the applied index. */
static struct dump dump_store(store *s)
{
    struct dump d = {0};
    FILE *fp = open_memstream(&d.buf, &d.len);
    assert_non_null(fp);
    store_txn *t = NULL;
    assert_int_equal(store_read_begin(s, &t), 0);
    for (int table = 1; table <= STORE_TABLE_MAX; table++) {
        fprintf(fp, "table %d\n", table);
        assert_int_equal(store_foreach(t, table, dump_one, fp), 0);
    }
    store_read_end(t);
    uint64_t applied = store_applied_index(s);
    fwrite(&applied, sizeof(applied), 1, fp);
    assert_int_equal(fclose(fp), 0);
    return d;
}

static void assert_same_dump(struct dump a, struct dump b)
{
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
}

/* Stores i and j hold byte-identical objects and the same applied index. */
static void assert_same_store(struct cluster *c, unsigned i, unsigned j)
{
    struct dump a = dump_store(c->srv[i].s), b = dump_store(c->srv[j].s);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
    free(a.buf);
    free(b.buf);
}

static void assert_all_same(struct cluster *c, const unsigned *set, size_t n)
{
    for (size_t k = 1; k < n; k++)
        assert_same_store(c, set[0], set[k]);
}

/* The secret's data in server i's store, or NULL if it has none (malloc'd). */
static char *secret_data(struct cluster *c, unsigned i, const char *id)
{
    store_txn *t = NULL;
    assert_int_equal(store_read_begin(c->srv[i].s, &t), 0);
    uint8_t *v = NULL;
    size_t len = 0;
    int r = store_get(t, STORE_SECRETS, id, &v, &len);
    store_read_end(t);
    if (r == -ENOENT)
        return NULL;
    assert_int_equal(r, 0);
    Swarm__Secret *s = swarm__secret__unpack(NULL, len, v);
    free(v);
    assert_non_null(s);
    char *data = strndup((const char *)s->data.data, s->data.len);
    assert_non_null(data);
    swarm__secret__free_unpacked(s, NULL);
    return data;
}

static void assert_secret(struct cluster *c, unsigned i, const char *id, const char *want)
{
    char *got = secret_data(c, i, id);
    if (!want) {
        if (got)
            fail_msg("server %u holds secret %s (%s), want none", i, id, got);
        return;
    }
    if (!got)
        fail_msg("server %u lacks secret %s", i, id);
    assert_string_equal(got, want);
    free(got);
}

static uint64_t service_replicas(struct cluster *c, unsigned i, const char *id)
{
    store_txn *t = NULL;
    assert_int_equal(store_read_begin(c->srv[i].s, &t), 0);
    uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(store_get(t, STORE_SERVICES, id, &v, &len), 0);
    store_read_end(t);
    Swarm__Service *s = swarm__service__unpack(NULL, len, v);
    free(v);
    assert_non_null(s);
    uint64_t n = s->replicas;
    swarm__service__free_unpacked(s, NULL);
    return n;
}

static const unsigned ALL3[] = {0, 1, 2};

/* ------------------------------------------------------------------ tests */

/* Three servers elect a leader; what it commits lands byte-identical in every store,
 * refused proposals included (they advance the applied index everywhere alike). */
static void test_replicate(void **state)
{
    struct cluster *c = *state;
    unsigned l = start(c, 3, 0, 0);
    assert_true(l < 3);

    char id[32], data[32];
    for (int k = 0; k < 8; k++) {
        snprintf(id, sizeof(id), "secret-%d", k);
        snprintf(data, sizeof(data), "data-%d", k);
        assert_int_equal(finish(c, propose_secret(c, l, STORE_CREATE, id, data)), 0);
    }
    assert_int_equal(finish(c, propose_service(c, l, STORE_CREATE, "svc-a", 1)), 0);
    assert_int_equal(finish(c, propose_service(c, l, STORE_CREATE, "svc-b", 2)), 0);
    assert_int_equal(finish(c, propose_service(c, l, STORE_UPDATE, "svc-a", 5)), 0);
    assert_int_equal(finish(c, propose_secret(c, l, STORE_DELETE, "secret-3", NULL)), 0);
    /* the store's rules answer the proposer and are the same on every member */
    assert_int_equal(finish(c, propose_secret(c, l, STORE_CREATE, "secret-0", "again")), -EEXIST);
    assert_int_equal(finish(c, propose_service(c, l, STORE_UPDATE, "svc-none", 1)), -ENOENT);
    /* a follower refuses to propose */
    unsigned fo = (l + 1) % 3;
    struct prop *p = propose_secret(c, fo, STORE_PUT, "from-follower", "x");
    assert_true(p->done);
    assert_int_equal(p->status, RAFT_NOTLEADER);

    sync_all(c, l);
    assert_all_same(c, ALL3, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_secret(c, i, "secret-0", "data-0");
        assert_secret(c, i, "secret-7", "data-7");
        assert_secret(c, i, "secret-3", NULL);
        assert_secret(c, i, "from-follower", NULL);
        assert_int_equal(service_replicas(c, i, "svc-a"), 5);
        assert_int_equal(service_replicas(c, i, "svc-b"), 2);
        assert_int_equal(store_applied_index(c->srv[i].s), store_applied_index(c->srv[l].s));
        assert_int_equal(c->srv[i].fatal, 0);
    }
    assert_true(store_applied_index(c->srv[l].s) >= 14);
}

static void transferred(struct raft_transfer *req)
{
    struct cluster *c = req->data;
    c->xfer_done = true;
}

/* Leadership moves (the leader deposed and another elected; then a leadership transfer, as a
 * demotion of the leader does); writes go on through each new leader and all converge. */
static void test_elect_and_transfer(void **state)
{
    struct cluster *c = *state;
    unsigned l = start(c, 3, 0, 0);
    assert_int_equal(put_secret(c, l, "first", "1"), 0);
    sync_all(c, l);

    raft_fixture_depose(&c->f);
    assert_int_not_equal(raft_state(R(c, l)), RAFT_LEADER);
    unsigned l2 = (l + 1) % 3;
    raft_fixture_elect(&c->f, l2);
    assert_int_equal(leader(c), l2);
    /* the deposed leader refuses writes */
    assert_int_equal(propose_secret(c, l, STORE_PUT, "stale", "x")->status, RAFT_NOTLEADER);
    assert_int_equal(put_secret(c, l2, "second", "2"), 0);
    sync_all(c, l2);
    assert_all_same(c, ALL3, 3);

    unsigned l3 = (l2 + 1) % 3;
    c->xfer.data = c;
    assert_int_equal(raft_transfer(R(c, l2), &c->xfer, R(c, l3)->id, transferred), 0);
    WAIT(c, c->xfer_done && leader(c) == l3);
    assert_int_equal(put_secret(c, l3, "third", "3"), 0);
    sync_all(c, l3);
    assert_all_same(c, ALL3, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_secret(c, i, "first", "1");
        assert_secret(c, i, "second", "2");
        assert_secret(c, i, "third", "3");
        assert_secret(c, i, "stale", NULL);
    }
}

static bool other_leader(struct cluster *c, unsigned old)
{
    unsigned l = leader(c);
    return l < c->n && l != old;
}

/* The leader cut off from both followers: the two elect a new leader whose writes commit;
 * the old leader's proposal fails and is applied nowhere; once reconnected the old leader
 * drops it and converges on the new writes. */
static void test_partition(void **state)
{
    struct cluster *c = *state;
    unsigned l = start(c, 3, 0, 0);
    assert_int_equal(put_secret(c, l, "before", "b"), 0);
    sync_all(c, l);

    unsigned others[2] = {(l + 1) % 3, (l + 2) % 3};
    cut(c, l, others[0]);
    cut(c, l, others[1]);
    struct prop *lost = propose_secret(c, l, STORE_PUT, "lost", "never");
    assert_false(lost->done); /* accepted: l still believes it leads */

    WAIT(c, other_leader(c, l) && lost->done);
    assert_int_not_equal(lost->status, 0);
    assert_int_not_equal(raft_state(R(c, l)), RAFT_LEADER);
    unsigned l2 = leader(c);
    assert_true(l2 == others[0] || l2 == others[1]);
    assert_int_equal(put_secret(c, l2, "after", "a"), 0);
    sync_set(c, l2, others, 2);
    assert_all_same(c, others, 2);
    assert_secret(c, others[0], "after", "a");
    assert_secret(c, l, "after", NULL);
    for (unsigned i = 0; i < 3; i++)
        assert_secret(c, i, "lost", NULL);

    heal(c, l, others[0]);
    heal(c, l, others[1]);
    sync_all(c, l2);
    assert_int_equal(leader(c), l2); /* pre-vote: the returning member did not depose it */
    assert_all_same(c, ALL3, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_secret(c, i, "before", "b");
        assert_secret(c, i, "after", "a");
        assert_secret(c, i, "lost", NULL);
    }
}

static void changed(struct raft_change *req, int status)
{
    struct cluster *c = req->data;
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
        WAIT((c), (c)->change_done);             \
        assert_int_equal((c)->change_status, 0); \
    } while (0)

/* A fourth manager joins (spare, then voter once caught up, as manager/members.c) and gets
 * the whole store; then a member is removed and the cluster commits without it. */
static void test_membership(void **state)
{
    struct cluster *c = *state;
    unsigned l = start(c, 3, 0, 0);
    for (int k = 0; k < 5; k++) {
        char id[32];
        snprintf(id, sizeof(id), "early-%d", k);
        assert_int_equal(put_secret(c, l, id, "e"), 0);
    }

    unsigned n4 = add_server(c);
    assert_int_equal(raft_start(R(c, n4)), 0);
    raft_id id4 = R(c, n4)->id;
    CHANGE(c, raft_add(R(c, l), &c->change, id4, R(c, n4)->address, changed));
    assert_int_equal(role_of(R(c, l), id4), RAFT_SPARE);
    CHANGE(c, raft_assign(R(c, l), &c->change, id4, RAFT_VOTER, changed));
    assert_int_equal(role_of(R(c, l), id4), RAFT_VOTER);

    assert_int_equal(put_secret(c, l, "with-four", "4"), 0);
    sync_all(c, l);
    const unsigned all4[] = {0, 1, 2, 3};
    assert_all_same(c, all4, 4);
    assert_secret(c, n4, "early-0", "e");
    assert_secret(c, n4, "with-four", "4");

    /* remove a follower other than the newcomer */
    unsigned gone = (l + 1) % 3, kept = (l + 2) % 3;
    CHANGE(c, raft_remove(R(c, l), &c->change, R(c, gone)->id, changed));
    assert_int_equal(role_of(R(c, l), R(c, gone)->id), -1);
    assert_int_equal(R(c, l)->configuration.n, 3);
    for (unsigned i = 0; i < c->n; i++)
        if (i != gone)
            cut(c, gone, i);
    raft_fixture_kill(&c->f, gone);

    /* leader + newcomer are 2 of the 3 voters left: a quorum only if `gone` no longer counts */
    cut(c, l, kept);
    cut(c, n4, kept);
    assert_int_equal(put_secret(c, l, "without", "w"), 0);
    const unsigned pair[] = {l, n4};
    sync_set(c, l, pair, 2);
    assert_secret(c, n4, "without", "w");
    assert_secret(c, kept, "without", NULL);
    assert_secret(c, gone, "without", NULL);
    assert_int_equal(leader(c), l);

    heal(c, l, kept);
    heal(c, n4, kept);
    const unsigned live[] = {l, kept, n4};
    sync_set(c, l, live, 3);
    assert_all_same(c, live, 3);
}

/* A follower cut off while the leader snapshots and truncates its log past it: back, it
 * installs the snapshot (store_restore) and ends with the same data; entries the snapshot
 * covers are skipped if applied again; later entries apply on top. */
static void test_snapshot_install(void **state)
{
    struct cluster *c = *state;
    unsigned l = start(c, 3, 8, 2);
    unsigned fo = (l + 1) % 3, other = (l + 2) % 3;
    assert_int_equal(put_secret(c, l, "s-early", "e"), 0);
    sync_all(c, l);
    uint64_t fo_before = store_applied_index(c->srv[fo].s);

    cut(c, fo, l);
    cut(c, fo, other);
    char id[32], data[32];
    for (int k = 0; k < 40; k++) {
        snprintf(id, sizeof(id), "s-%02d", k);
        snprintf(data, sizeof(data), "v-%d", k);
        assert_int_equal(put_secret(c, l, id, data), 0);
        if (k % 5 == 4) {
            snprintf(id, sizeof(id), "s-%02d", k - 2);
            assert_int_equal(finish(c, propose_secret(c, l, STORE_DELETE, id, NULL)), 0);
        }
    }
    assert_int_equal(finish(c, propose_service(c, l, STORE_PUT, "svc", 3)), 0);
    assert_true(c->srv[l].n_snapshots > 0);
    /* the leader no longer holds the entries the follower misses */
    assert_true(R(c, l)->log.snapshot.last_index > fo_before + 1);
    assert_int_equal(c->srv[fo].n_restores, 0);

    heal(c, fo, l);
    heal(c, fo, other);
    sync_all(c, l);
    assert_true(c->srv[fo].n_restores >= 1);
    assert_all_same(c, ALL3, 3);
    assert_secret(c, fo, "s-00", "v-0");
    assert_secret(c, fo, "s-02", NULL);
    assert_secret(c, fo, "s-39", "v-39");
    assert_int_equal(service_replicas(c, fo, "svc"), 3);
    /* what came through the snapshot never went through the follower's FSM apply */
    size_t via_fsm = 0, on_leader = 0;
    for (size_t k = 0; k < c->srv[fo].n_journal; k++)
        via_fsm += c->srv[fo].journal[k].index > fo_before;
    for (size_t k = 0; k < c->srv[l].n_journal; k++)
        on_leader += c->srv[l].journal[k].index > fo_before;
    assert_true(via_fsm < on_leader);

    /* raft re-applying entries the restored store already holds changes nothing */
    struct dump before = dump_store(c->srv[fo].s);
    uint64_t restored = store_applied_index(c->srv[fo].s);
    size_t replayed = 0;
    for (size_t k = 0; k < c->srv[l].n_journal; k++) {
        const struct jentry *j = &c->srv[l].journal[k];
        if (j->index > restored)
            continue;
        char err[256] = "";
        assert_int_equal(
            store_apply(c->srv[fo].s, j->index, j->payload, j->len, NULL, err, sizeof(err)), 1);
        replayed++;
    }
    assert_true(replayed >= 40);
    struct dump after = dump_store(c->srv[fo].s);
    assert_same_dump(before, after);
    free(before.buf);
    free(after.buf);

    /* and the cluster goes on on top of the snapshot */
    assert_int_equal(put_secret(c, l, "s-late", "late"), 0);
    sync_all(c, l);
    assert_all_same(c, ALL3, 3);
    assert_secret(c, fo, "s-late", "late");
}

/* A restart as raft replays it: the reopened store keeps its applied index, the whole log
 * applied again is a no-op, and an empty store fed the same log ends byte-identical. */
static void test_replay(void **state)
{
    struct cluster *c = *state;
    unsigned l = start(c, 3, 0, 0);
    for (int k = 0; k < 6; k++) {
        char id[32];
        snprintf(id, sizeof(id), "r-%d", k);
        assert_int_equal(put_secret(c, l, id, "r"), 0);
    }
    assert_int_equal(finish(c, propose_secret(c, l, STORE_DELETE, "r-1", NULL)), 0);
    assert_int_equal(finish(c, propose_secret(c, l, STORE_DELETE, "r-1", NULL)), -ENOENT);
    assert_int_equal(finish(c, propose_service(c, l, STORE_CREATE, "svc", 2)), 0);
    sync_all(c, l);
    unsigned x = (l + 1) % 3;
    struct srv *sv = &c->srv[x];
    struct dump d0 = dump_store(sv->s);
    uint64_t applied = store_applied_index(sv->s);
    assert_true(applied > 0);

    /* reopen: what was applied is on disk */
    store_close(sv->s);
    sv->s = open_store(c, sv->dir);
    assert_int_equal(store_applied_index(sv->s), applied);
    struct dump d1 = dump_store(sv->s);
    assert_same_dump(d0, d1);
    free(d1.buf);

    /* raft applies its log again from the start: every entry is skipped */
    for (size_t k = 0; k < sv->n_journal; k++) {
        char err[256] = "";
        assert_int_equal(store_apply(sv->s, sv->journal[k].index, sv->journal[k].payload,
                                     sv->journal[k].len, NULL, err, sizeof(err)),
                         1);
    }
    struct dump d2 = dump_store(sv->s);
    assert_same_dump(d0, d2);
    free(d2.buf);

    /* an empty store given the same log reaches the same state, with the same answers */
    snprintf(c->extra_dir, sizeof(c->extra_dir), "/tmp/test-fixture-XXXXXX");
    assert_non_null(mkdtemp(c->extra_dir));
    store *fresh = open_store(c, c->extra_dir);
    for (size_t k = 0; k < sv->n_journal; k++) {
        char err[256] = "";
        int r = store_apply(fresh, sv->journal[k].index, sv->journal[k].payload, sv->journal[k].len,
                            NULL, err, sizeof(err));
        assert_int_equal(r, sv->journal[k].r);
    }
    struct dump d3 = dump_store(fresh);
    store_close(fresh);
    assert_same_dump(d0, d3);
    free(d3.buf);
    free(d0.buf);

    /* the reopened store keeps following the cluster */
    assert_int_equal(put_secret(c, l, "r-late", "late"), 0);
    sync_all(c, l);
    assert_all_same(c, ALL3, 3);
    assert_secret(c, x, "r-late", "late");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elect_and_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
    };
    return cmocka_run_group_tests_name("store-fixture", tests, NULL, NULL);
}
