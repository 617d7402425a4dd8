/* Test harness for store/ under raft: the fixture cluster, the FSM (as manager/raft.c's, on a
 * real store per server), proposals and store dumps. See raftfix.h. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/swarm.pb-c.h"
#include "raftfix.h"

#define CLUSTER "c0000000000000000000000001"
/* manager/raft.c's entry: "SWE1" | payload length (big-endian u32) | sealed proposal | zero
 * padding to a multiple of 8 */
#define ENTRY_MAGIC "SWE1"
#define ENTRY_HEADER 8

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

store *rf_open_store(struct rf_cluster *c, const char *dir)
{
    char err[256] = "";
    store *s = NULL;
    int r = store_open(dir, CLUSTER, &c->dek, &s, err, sizeof(err));
    if (r < 0)
        fail_msg("store_open %s: %d %s", dir, r, err);
    return s;
}

struct raft *rf_raft(struct rf_cluster *c, unsigned i)
{
    return raft_fixture_get(&c->f, i);
}

int rf_any_fatal(struct rf_cluster *c)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->srv[i].fatal)
            return c->srv[i].fatal;
    return 0;
}

/* raft 0.15's raft_fixture_disconnect/reconnect act on one direction (i to j) only: a
 * partition needs both. */
void rf_cut(struct rf_cluster *c, unsigned i, unsigned j)
{
    raft_fixture_disconnect(&c->f, i, j);
    raft_fixture_disconnect(&c->f, j, i);
}

void rf_heal(struct rf_cluster *c, unsigned i, unsigned j)
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

static int journal_add(struct rf_srv *sv, uint64_t index, const uint8_t *payload, size_t len, int r)
{
    struct rf_jentry *j = realloc(sv->journal, (sv->n_journal + 1) * sizeof(*j));
    if (!j)
        return -ENOMEM;
    sv->journal = j;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, payload, len);
    j[sv->n_journal++] = (struct rf_jentry){.index = index, .payload = copy, .len = len, .r = r};
    return 0;
}

/* As manager/raft.c: the entry's index is the last applied one + 1 (raft applies
 * configuration entries and barriers without the FSM). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct rf_srv *sv = fsm->data;
    uint64_t index = raft_last_applied(rf_raft(sv->c, sv->i)) + 1;
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
    struct rf_srv *sv = fsm->data;
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
    struct rf_srv *sv = fsm->data;
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

int rf_setup(void **state)
{
    struct rf_cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    assert_int_equal(pki_aead_key_generate(&c->dek), 0);
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    c->fixture_inited = true;
    *state = c;
    return 0;
}

int rf_teardown(void **state)
{
    struct rf_cluster *c = *state;
    if (c->fixture_inited)
        raft_fixture_close(&c->f);
    for (unsigned i = 0; i < RF_NSRV; i++) {
        struct rf_srv *sv = &c->srv[i];
        store_close(sv->s);
        rm_rf(sv->dir);
        for (size_t k = 0; k < sv->n_journal; k++)
            free(sv->journal[k].payload);
        free(sv->journal);
    }
    rm_rf(c->extra_dir);
    while (c->props) {
        struct rf_prop *p = c->props;
        c->props = p->next;
        free(p);
    }
    pki_aead_key_clear(&c->dek);
    free(c);
    return 0;
}

/* A new server with its own empty store in the fixture (not started, not in the config). */
unsigned rf_add_server(struct rf_cluster *c)
{
    assert_true(c->n < RF_NSRV);
    unsigned i = c->n;
    struct rf_srv *sv = &c->srv[i];
    sv->c = c;
    sv->i = i;
    snprintf(sv->dir, sizeof(sv->dir), "/tmp/test-fixture-XXXXXX");
    assert_non_null(mkdtemp(sv->dir));
    sv->s = rf_open_store(c, sv->dir);
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
    raft_set_pre_vote(rf_raft(c, i), true);
    return i;
}

/* n voters bootstrapped and started; returns the elected leader. threshold 0 keeps raft's
 * snapshot defaults. */
unsigned rf_start(struct rf_cluster *c, unsigned n, unsigned threshold, unsigned trailing)
{
    for (unsigned i = 0; i < n; i++) {
        rf_add_server(c);
        if (threshold) {
            raft_set_snapshot_threshold(rf_raft(c, i), threshold);
            raft_set_snapshot_trailing(rf_raft(c, i), trailing);
        }
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
    int r = raft_fixture_bootstrap(&c->f, &conf);
    raft_configuration_close(&conf);
    assert_int_equal(r, 0);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&c->f, RF_WAIT_MS));
    return raft_fixture_leader_index(&c->f);
}

/* The live leader with the highest term (the fixture's own view also wants it stable). */
unsigned rf_leader(struct rf_cluster *c)
{
    unsigned best = c->n;
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i) || raft_state(rf_raft(c, i)) != RAFT_LEADER)
            continue;
        if (best == c->n || rf_raft(c, i)->current_term > rf_raft(c, best)->current_term)
            best = i;
    }
    return best;
}

static bool applied_at_least(struct rf_cluster *c, const unsigned *set, size_t n, raft_index index)
{
    for (size_t k = 0; k < n; k++)
        if (raft_last_applied(rf_raft(c, set[k])) < index)
            return false;
    return true;
}

/* Every server of set applies all the leader has applied. */
void rf_sync_set(struct rf_cluster *c, unsigned l, const unsigned *set, size_t n)
{
    raft_index index = raft_last_applied(rf_raft(c, l));
    RF_WAIT(c, applied_at_least(c, set, n, index));
}

void rf_sync_all(struct rf_cluster *c, unsigned l)
{
    unsigned set[RF_NSRV];
    for (unsigned i = 0; i < c->n; i++)
        set[i] = i;
    rf_sync_set(c, l, set, c->n);
}

/* ------------------------------------------------------------------ proposals */

static void applied_cb(struct raft_apply *req, int status, void *result)
{
    struct rf_prop *p = req->data;
    p->done = true;
    p->status = status;
    p->result = status == 0 ? (int)(intptr_t)result : 0;
}

/* Seal actions with server i's store and hand them to its raft (as mgr__propose). The
 * proposal may fail at once (p->done, p->status != 0) when i is not the leader. */
struct rf_prop *rf_propose(struct rf_cluster *c, unsigned i, const struct store_action *a, size_t n)
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

    struct rf_prop *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->next = c->props;
    c->props = p;
    p->req.data = p;
    int r = raft_apply(rf_raft(c, i), &p->req, &buf, 1, applied_cb);
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
struct rf_prop *rf_propose_secret(struct rf_cluster *c, unsigned i, enum store_action_kind kind,
                                  const char *id, const char *data)
{
    struct store_action a = {.kind = kind, .table = STORE_SECRETS, .id = id};
    uint8_t *v = NULL;
    if (data) {
        v = pack_secret(id, data, &a.len);
        a.value = v;
    }
    struct rf_prop *p = rf_propose(c, i, &a, 1);
    free(v);
    return p;
}

struct rf_prop *rf_propose_service(struct rf_cluster *c, unsigned i, enum store_action_kind kind,
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
    struct rf_prop *p = rf_propose(c, i, &a, 1);
    free(v);
    return p;
}

/* Wait for a proposal to commit; returns the store's answer (0, -EEXIST, -ENOENT). */
int rf_finish(struct rf_cluster *c, struct rf_prop *p)
{
    RF_WAIT(c, p->done);
    assert_int_equal(p->status, 0);
    return p->result;
}

int rf_put_secret(struct rf_cluster *c, unsigned i, const char *id, const char *data)
{
    return rf_finish(c, rf_propose_secret(c, i, STORE_PUT, id, data));
}

/* ------------------------------------------------------------------ reading stores */

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
struct rf_dump rf_dump_store(store *s)
{
    struct rf_dump d = {0};
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

void rf_assert_same_dump(struct rf_dump a, struct rf_dump b)
{
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
}

/* Stores i and j hold byte-identical objects and the same applied index. */
void rf_assert_same_store(struct rf_cluster *c, unsigned i, unsigned j)
{
    struct rf_dump a = rf_dump_store(c->srv[i].s), b = rf_dump_store(c->srv[j].s);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
    free(a.buf);
    free(b.buf);
}

void rf_assert_all_same(struct rf_cluster *c, const unsigned *set, size_t n)
{
    for (size_t k = 1; k < n; k++)
        rf_assert_same_store(c, set[0], set[k]);
}

/* The secret's data in server i's store, or NULL if it has none (malloc'd). */
static char *secret_data(struct rf_cluster *c, unsigned i, const char *id)
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

void rf_assert_secret(struct rf_cluster *c, unsigned i, const char *id, const char *want)
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

uint64_t rf_service_replicas(struct rf_cluster *c, unsigned i, const char *id)
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
