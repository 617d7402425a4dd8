/* Raft: canonical/raft with raft_uv under <state-dir>/raft, the FSM that applies sealed
 * proposals to the store, proposals with commit callbacks, and serialised edits of the
 * cluster object. Raft's transport is ours (transport.c): mTLS between managers. */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/swtime.h"
#include "proto/frame.h"
#include "common/log.h"
#include "manager/internal.h"

/* ------------------------------------------------------------------ FSM */

/* A raft entry: "SWE1" | payload length (4 bytes, big-endian) | sealed proposal | zero
 * padding to a multiple of 8. raft 0.15's segment encoder requires 8-byte multiples (it
 * does not pad; with its asserts compiled out an odd length corrupts the closed segment). */
#define ENTRY_MAGIC "SWE1"
#define ENTRY_HEADER 8

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

/* Batched applies. raft 0.15 applies the entries it learns are committed in one synchronous
 * loop: fsm->apply, then the proposer's callback, entry after entry. Applies go into the
 * store's batch, one LMDB write transaction whose commit (one flush) serves many entries;
 * proposers' answers and watch events wait for that commit (propose_done defers them), so
 * nothing is acknowledged before the store holds it. raft's log stays the durable record: a
 * commit lost in a crash is applied again from the log at the next start.
 * The batch is committed after the last entry of an apply loop, except:
 * - on the leader, while the next entry (a command it appended) awaits its commit: the
 *   followers' acknowledgements arrive a few at a time, and one flush per arrival would
 *   cap the leader's write rate (group commit; bounded by LEADER_BATCH_*);
 * - on a follower, nobody waits for its store (the control API runs on the leader, and
 *   its watchers tolerate the delay): one flush per FOLLOWER_BATCH_* spares the disk the
 *   managers share.
 * raft's tick (every heartbeat timeout) and a term change (before this manager stands for
 * election) commit whatever is open, as do snapshots, restores and the close. Entries other
 * than commands (configuration changes, barriers), whose callbacks may read the store, find
 * it committed. */
#define LEADER_BATCH_MAX 1024
#define LEADER_BATCH_NS (2 * 1000000ULL)
#define FOLLOWER_BATCH_MAX 4096
#define FOLLOWER_BATCH_NS (50 * 1000000ULL)

/* The entry at index in raft's in-memory log, or NULL (raft 0.15's circular buffer: index
 * offset+1+i is at entries[(front+i) % size]). */
static const struct raft_entry *log_entry(const struct raft *r, raft_index index)
{
    const struct raft_log *l = &r->log;
    if (l->size == 0 || index <= l->offset)
        return NULL;
    size_t n = l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;
    raft_index i = index - l->offset - 1;
    if (i >= n)
        return NULL;
    return &l->entries[(l->front + i) % l->size];
}

/* Whether the batch stays open after the apply of index (buffer buf). A log that does not
 * look as expected commits every entry. */
static bool keep_batch(struct mgr *m, raft_index index, const struct raft_buffer *buf)
{
    struct raft *r = &m->raft;
    const struct raft_entry *cur = log_entry(r, index), *next;
    if (!cur || cur->buf.base != buf->base)
        return false;
    next = log_entry(r, index + 1);
    bool command_next = next && next->type == RAFT_COMMAND;
    if (index < r->commit_index) /* more of this apply loop follow */
        return command_next;
    size_t n = store_batch_entries(m->store);
    uint64_t age = sw_now_monotonic_ns() - store_batch_begun(m->store);
    switch (raft_state(r)) {
        case RAFT_LEADER:
            return command_next && n < LEADER_BATCH_MAX && age < LEADER_BATCH_NS;
        case RAFT_FOLLOWER:
            return n < FOLLOWER_BATCH_MAX && age < FOLLOWER_BATCH_NS;
        default:
            return false;
    }
}

/* Commit the open batch, which runs the deferred callbacks. A failure is fatal: raft counts
 * the batch's entries as applied, the store has none of them. */
static int batch_commit(struct mgr *m)
{
    char err[256] = "";
    int r = store_batch_commit(m->store, err, sizeof(err));
    if (r < 0)
        mgr__fatal(m, r,
                   "raft entries up to %" PRIu64
                   " could not be committed to the store: %s; free disk space or "
                   "restore the state directory, then restart swarmd",
                   store_applied_index(m->store), err);
    return r;
}

static void proposal_applied(struct mgr *m, const struct raft_buffer *buf, int result);
static void proposals_check_leading(struct mgr *m, bool stepping_down);
static int proposals_start(struct mgr *m);
static void proposals_stop(struct mgr *m);

/* raft_uv's own start and set_term (the same functions for every manager in the process),
 * and raft's tick callback, which the wrappers below call after committing the batch. */
static int (*uv_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv);
static int (*uv_set_term)(struct raft_io *io, raft_term term);
static raft_io_tick_cb raft_tick;

static struct mgr *io_mgr(struct raft_io *io)
{
    return (struct mgr *)((char *)io - offsetof(struct mgr, io));
}

static void io_tick_wrap(struct raft_io *io)
{
    struct mgr *m = io_mgr(io);
    batch_commit(m);
    proposals_check_leading(m, false);
    raft_tick(io);
}

static int io_start_wrap(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                         raft_io_recv_cb recv)
{
    raft_tick = tick;
    return uv_start(io, msecs, io_tick_wrap, recv);
}

/* A new term: this manager stands for election or follows a new leader. A leader must find
 * every applied entry in its store, and so must its proposers (the old leader's answers).
 * A leader's term changes only as it steps down (it is about to become a follower). */
static int io_set_term_wrap(struct raft_io *io, raft_term term)
{
    struct mgr *m = io_mgr(io);
    if (batch_commit(m) < 0)
        return RAFT_IOERR;
    proposals_check_leading(m, raft_state(&m->raft) == RAFT_LEADER);
    return uv_set_term(io, term);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct mgr *m = fsm->data;
    uint64_t index = raft_last_applied(&m->raft) + 1;
    char err[256] = "bad entry framing";
    const uint8_t *payload = NULL;
    size_t len = 0;
    int r = entry_payload(buf, &payload, &len);
    if (r >= 0)
        r = store_apply_batched(m->store, index, payload, len, NULL, err, sizeof(err));
    if (r >= 0 || r == -EEXIST || r == -ENOENT || r == -EINVAL) {
        /* applied, replayed, or refused by the store's rules: an answer for the proposer */
        if (r < 0)
            log_debug("raft entry %" PRIu64 " not applied: %s", index, err);
        proposal_applied(m, buf, r > 0 ? 0 : r);
        if (!keep_batch(m, index, buf) && batch_commit(m) < 0)
            return RAFT_IOERR;
        *result = NULL;
        return 0;
    }
    /* The store could not take a committed entry (disk full, I/O error, or ciphertext the
     * data key does not open). Going on would apply later entries on top of a hole: stop,
     * and let raft re-apply it at the next start. What the batch holds before it is
     * committed (nothing if the error undid the batch). */
    batch_commit(m);
    mgr__fatal(m, r,
               "raft entry %" PRIu64
               " could not be applied to the store: %s; free disk space or "
               "restore the state directory, then restart swarmd",
               index, err);
    return RAFT_IOERR;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct mgr *m = fsm->data;
    uint8_t *data;
    size_t len;
    /* raft truncates its log behind this snapshot: everything applied so far must be in
     * LMDB and on disk first (the store runs with MDB_NOMETASYNC) */
    if (batch_commit(m) < 0)
        return RAFT_IOERR;
    int r = store_sync(m->store);
    if (r < 0) {
        log_warn_errno(r, "cannot flush the store before a snapshot");
        return RAFT_IOERR;
    }
    r = store_snapshot(m->store, &data, &len);
    if (r < 0) {
        log_warn_errno(r, "cannot take a store snapshot");
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
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
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
    struct mgr *m = fsm->data;
    char err[256] = "";
    if (batch_commit(m) < 0)
        return RAFT_IOERR;
    int r = store_restore(m->store, buf->base, buf->len, err, sizeof(err));
    if (r < 0) {
        log_error("cannot restore the store from a raft snapshot: %s", err);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base); /* on success the FSM owns the buffer */
    return 0;
}

/* ------------------------------------------------------------------ start / close */

static void io_close_wrap(struct raft_io *io, raft_io_close_cb cb);

int mgr__raft_start(struct mgr *m, bool bootstrap, char *errmsg, size_t size)
{
    char dir[4096], addr[80];
    int r;

    snprintf(dir, sizeof(dir), "%s/%s", m->state_dir, MGR_RAFT_DIR);
    r = sw_mkdir_p(dir, 0700);
    if (r < 0) {
        snprintf(errmsg, size, "cannot create %s: %s", dir, strerror(-r));
        return r;
    }
    sw_addr_format(&m->st.advertise_addr, addr, sizeof(addr));

    mgr__transport_setup(m);
    r = proposals_start(m);
    if (r < 0) {
        snprintf(errmsg, size, "raft: %s", strerror(-r));
        return r;
    }

    m->fsm = (struct raft_fsm){0};
    m->fsm.version = 2;
    m->fsm.data = m;
    m->fsm.apply = fsm_apply;
    m->fsm.snapshot = fsm_snapshot;
    m->fsm.snapshot_finalize = fsm_snapshot_finalize;
    m->fsm.restore = fsm_restore;

    r = raft_uv_init(&m->io, m->loop, dir, &m->transport);
    if (r != 0) {
        snprintf(errmsg, size, "raft storage in %s: %s", dir, m->io.errmsg);
        return -EIO;
    }
    m->uv_io_close = m->io.close;
    m->io.close = io_close_wrap;
    uv_start = m->io.start;
    m->io.start = io_start_wrap;
    uv_set_term = m->io.set_term;
    m->io.set_term = io_set_term_wrap;
    m->raft_io_inited = true;
    log_debug("raft: storage initialised");
    /* Snapshots are sealed, so compressing them would gain nothing. */
    raft_uv_set_snapshot_compression(&m->io, false);
    /* a lost peer is tried again soon: failover within a couple of seconds */
    raft_uv_set_connect_retry_delay(&m->io, 200);

    r = raft_init(&m->raft, &m->io, &m->fsm, m->st.raft_id, addr);
    if (r != 0) {
        snprintf(errmsg, size, "raft: %s", raft_errmsg(&m->raft));
        return -EIO;
    }
    m->raft_inited = true;
    m->raft.data = m;
    /* heartbeats every 100 ms; a follower that hears none for 600-1200 ms stands (with
     * pre-vote, below): failover in about a second */
    raft_set_election_timeout(&m->raft, 600);
    raft_set_heartbeat_timeout(&m->raft, 100);
    /* a member cut off and back must not depose a working leader with its raised term */
    raft_set_pre_vote(&m->raft, true);
    raft_set_snapshot_threshold(&m->raft, m->snapshot_threshold);
    raft_set_snapshot_trailing(&m->raft, m->snapshot_trailing);

    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        r = raft_configuration_add(&conf, m->st.raft_id, addr, RAFT_VOTER);
        if (r == 0)
            r = raft_bootstrap(&m->raft, &conf);
        raft_configuration_close(&conf);
        if (r != 0) {
            snprintf(errmsg, size,
                     r == RAFT_CANTBOOTSTRAP
                         ? "%s already holds raft data from an earlier, incomplete init; remove "
                           "the state directory and run swarmd init again"
                         : "cannot bootstrap raft in %s: %s",
                     dir, raft_strerror(r));
            return -EEXIST;
        }
    }
    if (m->force_new_cluster) {
        /* quorum is lost for good: this manager alone, with everything it holds */
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        r = raft_configuration_add(&conf, m->st.raft_id, addr, RAFT_VOTER);
        if (r == 0)
            r = raft_recover(&m->raft, &conf);
        raft_configuration_close(&conf);
        if (r != 0) {
            snprintf(errmsg, size, "cannot recover raft in %s as a one-manager cluster: %s", dir,
                     raft_errmsg(&m->raft)[0] ? raft_errmsg(&m->raft) : raft_strerror(r));
            return -EIO;
        }
        log_warn("raft recovered with this manager as its only member (--force-new-cluster)");
    }
    log_debug("raft: configured");
    r = raft_start(&m->raft);
    if (r != 0) {
        if (m->fatal_status)
            snprintf(errmsg, size, "%s", m->errmsg);
        else
            snprintf(errmsg, size, "cannot start raft from %s: %s", dir,
                     raft_errmsg(&m->raft)[0] ? raft_errmsg(&m->raft) : raft_strerror(r));
        return m->fatal_status ? m->fatal_status : -EIO;
    }
    return 0;
}

static void raft_done(uv_handle_t *h)
{
    mgr__close_done(h->data);
}

/* raft 0.15's raft_uv may fire its close callback more than once: a second completion
 * (an open segment finalised, a prepared one) after the first has run ioCloseCb, which
 * then frees raft's address twice, or reads a raft_uv already released. So the close
 * callback reaches raft once (io_close_once), and raft_uv with the memory holding its
 * struct raft_io (m) stays allocated until the process exits (mgr__raft_reap). */
static struct mgr *graveyard; /* stopped managers, kept for raft_uv's late callbacks */

static void io_close_once(struct raft_io *io)
{
    struct mgr *m = (struct mgr *)((char *)io - offsetof(struct mgr, io));
    if (m->io_close_fired)
        return;
    m->io_close_fired = true;
    m->raft_io_close_cb(io);
}

static void io_close_wrap(struct raft_io *io, raft_io_close_cb cb)
{
    struct mgr *m = (struct mgr *)((char *)io - offsetof(struct mgr, io));
    m->raft_io_close_cb = cb;
    m->uv_io_close(io, io_close_once);
}

static void reap(void)
{
    while (graveyard) {
        struct mgr *m = graveyard;
        graveyard = m->grave_next;
        if (m->raft_io_inited)
            raft_uv_close(&m->io);
        free(m);
    }
}

bool mgr__raft_keep(struct mgr *m)
{
    static bool registered;
    if (!m->raft_io_inited)
        return false;
    if (!registered) {
        atexit(reap);
        registered = true;
    }
    m->grave_next = graveyard;
    graveyard = m;
    return true;
}

/* raft still touches its struct raft and raft_io after this callback returns, so m (which
 * holds them) may be freed only later (and then only at exit: see above). */
static void raft_closed(struct raft *raft)
{
    struct mgr *m = raft->data;
    m->raft_inited = false;
    uv_close((uv_handle_t *)&m->raft_done, raft_done);
}

void mgr__raft_close(struct mgr *m)
{
    /* answer what the store holds while the manager is whole (store_close, later, would
     * cancel it) */
    if (m->store)
        batch_commit(m);
    proposals_stop(m);
    m->pending_closes++; /* released in raft_done */
    if (m->raft_inited) {
        m->raft.data = m;
        raft_close(&m->raft, raft_closed);
        return;
    }
    if (m->raft_io_inited) {
        raft_uv_close(&m->io);
        m->raft_io_inited = false;
    }
    /* raft never started: nothing closes the transport's handle but us */
    m->transport_close_cb = NULL;
    m->pending_closes++;
    uv_close((uv_handle_t *)&m->transport_handle, raft_done);
    uv_close((uv_handle_t *)&m->raft_done, raft_done);
}

int mgr_leader_addr(mgr *m, char *buf, size_t size)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (!m->raft_inited)
        return -ENOENT;
    raft_leader(&m->raft, &id, &addr);
    if (!id || !addr || !addr[0])
        return -ENOENT;
    snprintf(buf, size, "%s", addr);
    return 0;
}

bool mgr_is_leader(mgr *m)
{
    return mgr__is_leader(m);
}

bool mgr__is_leader(struct mgr *m)
{
    return m->raft_inited && raft_state(&m->raft) == RAFT_LEADER;
}

uint64_t mgr__leader_raft_id(struct mgr *m)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (!m->raft_inited)
        return 0;
    raft_leader(&m->raft, &id, &addr);
    return id;
}

/* ------------------------------------------------------------------ proposals */

/* The proposals of one loop iteration go to raft together (a uv_check at the iteration's
 * end): one raft_apply with one entry per proposal, which raft appends in one write and
 * sends in one AppendEntries per follower (one each cost every manager a message, TLS
 * records and system calls). raft 0.15 answers one request per raft_apply, after its first
 * entry: each proposer is answered from fsm_apply instead, which finds it by the buffer of
 * its entry (the leader's log holds the buffers it was given), once the store has committed
 * the entry. What raft never applies is answered with an error when raft fails the request,
 * when this manager stops leading (a term change, a tick that finds it no leader) and when
 * it closes. */
#define GROUP_MAX 256

struct prop {
    struct prop_group *g;
    mgr_commit_fn cb;
    void *userdata;
    void *base; /* the entry's buffer */
    size_t len;
    int status;
    bool answered;
};

struct prop_group {
    struct raft_apply req;
    struct mgr *m;
    struct prop_group *next; /* in flight, in log order */
    bool in_flight;
    unsigned n, applied; /* proposals; how many of them fsm_apply met */
    unsigned refs;       /* raft's callback, answers waiting for a commit */
    struct prop p[];
};

/* Per manager (struct mgr has no room for it): the group being formed, and those in flight. */
struct prop_side {
    struct mgr *m;
    uv_check_t check;
    struct prop_side *next;
    struct prop_group *forming;
    unsigned cap;
    struct prop_group *head, *tail;
};
static struct prop_side *sides;

static struct prop_side *side_of(const struct mgr *m)
{
    for (struct prop_side *sd = sides; sd; sd = sd->next)
        if (sd->m == m)
            return sd;
    return NULL;
}

static int raft_status_to_errno(int status)
{
    switch (status) {
        case 0:
            return 0;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return -ENOTCONN;
        case RAFT_SHUTDOWN:
            return -ECANCELED;
        case RAFT_NOMEM:
            return -ENOMEM;
        case RAFT_TOOBIG:
            return -EMSGSIZE;
        default:
            return -EIO;
    }
}

static void group_unref(struct prop_group *g)
{
    if (--g->refs == 0 && !g->in_flight)
        free(g);
}

static void prop_answer(struct prop *p, int status)
{
    if (p->answered)
        return;
    p->answered = true;
    if (p->cb)
        p->cb(p->g->m, status, p->userdata);
}

/* An answer deferred until the store's commit of the entry (store_batch_defer). */
static void prop_committed(int commit_status, void *userdata)
{
    struct prop *p = userdata;
    struct prop_group *g = p->g;
    prop_answer(p, commit_status < 0 ? -EIO : p->status);
    group_unref(g);
}

static void group_unlink(struct prop_side *sd, struct prop_group *g)
{
    struct prop_group **pp = &sd->head, *prev = NULL;
    while (*pp && *pp != g) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = g->next;
    if (sd->tail == g)
        sd->tail = prev;
    g->in_flight = false;
    g->next = NULL;
}

/* Answer with status every proposal of g that fsm_apply has not met. The store's batch is
 * committed first: the entries before them are answered before them. The caller holds a
 * reference to g. */
static void group_answer_rest(struct prop_group *g, int status)
{
    if (g->applied >= g->n)
        return;
    batch_commit(g->m);
    for (unsigned i = g->applied; i < g->n; i++)
        prop_answer(&g->p[i], status);
    g->applied = g->n;
}

/* The groups in flight will not be applied as this manager's: fail what is unanswered. */
static void groups_fail(struct prop_side *sd, int status)
{
    while (sd->head) {
        struct prop_group *g = sd->head;
        group_unlink(sd, g);
        g->refs++;
        group_answer_rest(g, status);
        group_unref(g); /* frees g if nothing else holds it */
    }
}

static void group_done(struct raft_apply *req, int status, void *result)
{
    struct prop_group *g = (struct prop_group *)req;
    (void)result; /* each proposal's came through fsm_apply */
    if (status != 0) {
        struct prop_side *sd = g->in_flight ? side_of(g->m) : NULL;
        if (sd)
            group_unlink(sd, g);
        group_answer_rest(g, raft_status_to_errno(status)); /* raft's reference keeps g */
    }
    group_unref(g); /* raft's reference */
}

/* fsm_apply met the entry in buf: if it is a proposal of this manager's, its answer waits for
 * the commit of the store's batch (or comes now if none is open). */
static void proposal_applied(struct mgr *m, const struct raft_buffer *buf, int result)
{
    struct prop_side *sd = side_of(m);
    struct prop_group *g = sd ? sd->head : NULL;
    if (!g || g->applied >= g->n || g->p[g->applied].base != buf->base)
        return;
    struct prop *p = &g->p[g->applied++];
    if (g->applied == g->n)
        group_unlink(sd, g);
    p->status = result;
    g->refs++;
    int r = store_batch_defer(m->store, prop_committed, p);
    if (r == 0)
        return;
    /* no batch open (1): answer now; could not queue (<0): commit, then answer */
    prop_committed(r < 0 ? batch_commit(m) : 0, p);
}

static void group_free_unsent(struct prop_group *g, int status)
{
    for (unsigned i = 0; i < g->n; i++) {
        raft_free(g->p[i].base);
        g->p[i].g = g;
        prop_answer(&g->p[i], status);
    }
    free(g);
}

/* Hand the group formed in this loop iteration to raft. */
static void group_submit(struct prop_side *sd)
{
    struct prop_group *g = sd->forming;
    struct raft_buffer stack_bufs[32], *bufs = stack_bufs;
    struct mgr *m = sd->m;

    sd->forming = NULL;
    sd->cap = 0;
    uv_check_stop(&sd->check);
    if (!g)
        return;
    if (g->n > sizeof(stack_bufs) / sizeof(stack_bufs[0])) {
        bufs = malloc(g->n * sizeof(*bufs));
        if (!bufs) {
            group_free_unsent(g, -ENOMEM);
            return;
        }
    }
    for (unsigned i = 0; i < g->n; i++) {
        g->p[i].g = g;
        bufs[i] = (struct raft_buffer){.base = g->p[i].base, .len = g->p[i].len};
    }
    g->m = m;
    g->refs = 1; /* raft's callback */
    int r = m->stopping ? RAFT_SHUTDOWN : raft_apply(&m->raft, &g->req, bufs, g->n, group_done);
    if (bufs != stack_bufs)
        free(bufs);
    if (r != 0) {
        group_free_unsent(g, raft_status_to_errno(r));
        return;
    }
    g->in_flight = true;
    if (sd->tail)
        sd->tail->next = g;
    else
        sd->head = g;
    sd->tail = g;
}

static void group_check_cb(uv_check_t *h)
{
    group_submit(h->data);
}

static int group_add(struct prop_side *sd, void *base, size_t len, mgr_commit_fn cb, void *userdata)
{
    struct prop_group *g = sd->forming;
    if (!g || g->n == sd->cap) {
        unsigned cap = sd->cap ? sd->cap * 2 : 16;
        g = realloc(g, sizeof(*g) + cap * sizeof(g->p[0]));
        if (!g)
            return -ENOMEM;
        if (!sd->forming) {
            memset(g, 0, sizeof(*g));
            g->m = sd->m;
            uv_check_start(&sd->check, group_check_cb);
        }
        sd->forming = g;
        sd->cap = cap;
    }
    g->p[g->n++] = (struct prop){.cb = cb, .userdata = userdata, .base = base, .len = len};
    if (g->n == GROUP_MAX)
        group_submit(sd);
    return 0;
}

static int proposals_start(struct mgr *m)
{
    if (side_of(m))
        return 0; /* raft started again (after a failed start) */
    struct prop_side *sd = calloc(1, sizeof(*sd));
    if (!sd)
        return -ENOMEM;
    sd->m = m;
    int r = uv_check_init(m->loop, &sd->check);
    if (r < 0) {
        free(sd);
        return r;
    }
    sd->check.data = sd;
    sd->next = sides;
    sides = sd;
    return 0;
}

static void side_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Every proposal not answered yet is answered with -ECANCELED; raft's later callbacks find
 * their groups out of flight. */
static void proposals_stop(struct mgr *m)
{
    struct prop_side *sd = side_of(m);
    if (!sd)
        return;
    for (struct prop_side **pp = &sides; *pp; pp = &(*pp)->next)
        if (*pp == sd) {
            *pp = sd->next;
            break;
        }
    /* detached first: the answers may propose again (and find no side) */
    struct prop_group *forming = sd->forming;
    sd->forming = NULL;
    sd->cap = 0;
    uv_close((uv_handle_t *)&sd->check, side_closed);
    if (forming)
        group_free_unsent(forming, -ECANCELED);
    groups_fail(sd, -ECANCELED); /* sd is freed only in side_closed, later */
}

/* Called from raft's tick and a term change: a manager that no longer leads (or is about to
 * step down) fails what raft has not applied of its groups, as raft fails its requests. */
static void proposals_check_leading(struct mgr *m, bool stepping_down)
{
    struct prop_side *sd = side_of(m);
    if (sd && sd->head && (stepping_down || raft_state(&m->raft) != RAFT_LEADER))
        groups_fail(sd, -ENOTCONN);
}

int mgr__propose(struct mgr *m, const struct store_action *actions, size_t n, mgr_commit_fn cb,
                 void *userdata)
{
    struct prop_side *sd = side_of(m);
    uint8_t *sealed;
    size_t len;
    int r;

    if (m->stopping)
        return -ECANCELED;
    if (!sd || !mgr__is_leader(m))
        return -ENOTCONN;
    r = store_proposal_seal(m->store, ++m->next_request_id, actions, n, &sealed, &len);
    if (r < 0)
        return r;
    size_t total = (ENTRY_HEADER + len + 7) & ~(size_t)7;
    if (len > UINT32_MAX) {
        free(sealed);
        return -EMSGSIZE;
    }
    uint8_t *e = raft_malloc(total);
    if (!e) {
        free(sealed);
        return -ENOMEM;
    }
    memcpy(e, ENTRY_MAGIC, 4);
    e[4] = (uint8_t)(len >> 24);
    e[5] = (uint8_t)(len >> 16);
    e[6] = (uint8_t)(len >> 8);
    e[7] = (uint8_t)len;
    memcpy(e + ENTRY_HEADER, sealed, len);
    memset(e + ENTRY_HEADER + len, 0, total - ENTRY_HEADER - len);
    free(sealed);
    r = group_add(sd, e, total, cb, userdata);
    if (r < 0)
        raft_free(e);
    return r;
}

/* ------------------------------------------------------------------ cluster edits */

static void cluster_op_next(struct mgr *m);

static void cluster_op_committed(struct mgr *m, int status, void *userdata)
{
    struct mgr_cluster_op *op = userdata;
    m->cluster_op_running = false;
    if (op->cb)
        op->cb(m, status, op->userdata);
    free(op);
    cluster_op_next(m);
}

/* Read, mutate, propose; 0 once proposed (cluster_op_committed follows). */
static int propose_update(struct mgr *m, struct mgr_cluster_op *op, enum store_table table,
                          const char *id, const ProtobufCMessage *obj)
{
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    int r = proto_pack(obj, &buf, &len);
    if (r < 0)
        return r;
    struct store_action a = {
        .kind = STORE_UPDATE, .table = table, .id = id, .value = buf, .len = len};
    m->cluster_op_running = true;
    r = mgr__propose(m, &a, 1, cluster_op_committed, op);
    if (r < 0)
        m->cluster_op_running = false;
    sw_erase(buf, len);
    return r;
}

static int run_cluster_op(struct mgr *m, struct mgr_cluster_op *op)
{
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r >= 0)
        r = op->mutate(m, c, op->userdata);
    if (r >= 0) {
        c->meta->updated_at = sw_now_realtime_ns();
        r = propose_update(m, op, STORE_CLUSTER, c->id, &c->base);
    }
    if (c)
        mgr__cluster_free(c);
    return r;
}

static int run_node_op(struct mgr *m, struct mgr_cluster_op *op)
{
    Swarm__Node *n = NULL;
    int r = mgr__get_node(m, op->node_id, &n);
    if (r >= 0)
        r = op->node_mutate(m, n, op->userdata);
    if (r >= 0) {
        if (n->meta)
            n->meta->updated_at = sw_now_realtime_ns();
        r = propose_update(m, op, STORE_NODES, op->node_id, &n->base);
    }
    if (n)
        swarm__node__free_unpacked(n, NULL);
    return r;
}

int mgr__batch_add(struct mgr_batch *b, enum store_action_kind kind, enum store_table table,
                   const char *id, const ProtobufCMessage *obj)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct store_action *a = realloc(b->a, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        b->a = a;
        b->cap = cap;
    }
    struct store_action *x = &b->a[b->n];
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->table = table;
    x->id = strdup(id);
    if (!x->id)
        return -ENOMEM;
    if (obj) {
        uint8_t *buf;
        size_t len;
        int r = proto_pack(obj, &buf, &len);
        if (r < 0) {
            free((char *)x->id);
            return r;
        }
        x->value = buf;
        x->len = len;
    }
    b->n++;
    return 0;
}

void mgr__batch_free(struct mgr_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free((char *)b->a[i].id);
        if (b->a[i].value) {
            sw_erase((void *)b->a[i].value, b->a[i].len);
            free((void *)b->a[i].value);
        }
    }
    free(b->a);
    memset(b, 0, sizeof(*b));
}

static int run_batch_op(struct mgr *m, struct mgr_cluster_op *op)
{
    struct mgr_batch b = {0};
    int r = op->batch(m, &b, op->userdata);
    if (r >= 0 && b.n == 0) {
        mgr__batch_free(&b);
        return 1; /* nothing to commit */
    }
    if (r >= 0) {
        m->cluster_op_running = true;
        r = mgr__propose(m, b.a, b.n, cluster_op_committed, op);
        if (r < 0)
            m->cluster_op_running = false;
    }
    mgr__batch_free(&b);
    return r;
}

static void cluster_op_next(struct mgr *m)
{
    while (!m->cluster_op_running && m->cluster_ops_head) {
        struct mgr_cluster_op *op = m->cluster_ops_head;
        m->cluster_ops_head = op->next;
        if (!m->cluster_ops_head)
            m->cluster_ops_tail = NULL;

        int r = op->batch         ? run_batch_op(m, op)
                : op->node_mutate ? run_node_op(m, op)
                                  : run_cluster_op(m, op);
        if (r > 0) { /* done without a proposal */
            if (op->cb)
                op->cb(m, 0, op->userdata);
            free(op);
            continue;
        }
        if (r < 0) {
            if (op->cb)
                op->cb(m, r, op->userdata);
            free(op);
        }
    }
}

static int enqueue(struct mgr *m, struct mgr_cluster_op *op)
{
    if (m->cluster_ops_tail)
        m->cluster_ops_tail->next = op;
    else
        m->cluster_ops_head = op;
    m->cluster_ops_tail = op;
    cluster_op_next(m);
    return 0;
}

int mgr__cluster_update(struct mgr *m, mgr_cluster_mutate_fn mutate, mgr_commit_fn cb,
                        void *userdata)
{
    if (m->stopping)
        return -ECANCELED;
    struct mgr_cluster_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->mutate = mutate;
    op->cb = cb;
    op->userdata = userdata;
    return enqueue(m, op);
}

int mgr__batch_update(struct mgr *m, mgr_batch_fn fn, mgr_commit_fn cb, void *userdata)
{
    if (m->stopping)
        return -ECANCELED;
    struct mgr_cluster_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->batch = fn;
    op->cb = cb;
    op->userdata = userdata;
    return enqueue(m, op);
}

int mgr__node_update(struct mgr *m, const char *node_id, mgr_node_mutate_fn mutate,
                     mgr_commit_fn cb, void *userdata)
{
    if (m->stopping)
        return -ECANCELED;
    if (!sw_id_valid(node_id))
        return -EINVAL;
    struct mgr_cluster_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->node_mutate = mutate;
    memcpy(op->node_id, node_id, SW_ID_LEN + 1);
    op->cb = cb;
    op->userdata = userdata;
    return enqueue(m, op);
}
