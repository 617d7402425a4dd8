/* Data key rotation (cluster update --rotate-data-key): the leader hands every manager the
 * next key over mTLS (Raft.AddDataKey), then names it in the cluster object; each manager
 * then seals under it, re-seals its store, and forgets the older key once a snapshot of
 * its own supersedes the raft entries the older key sealed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

#define PUSH_TIMEOUT_MS 5000u

/* keys/dek as the store holds them now: the current key first. */
static int persist(struct mgr *m)
{
    struct pki_aead_key cur, old[STORE_OLD_KEYS_MAX];
    bool retired[STORE_OLD_KEYS_MAX];
    char err[512];
    store_current_key(m->store, &cur);
    unsigned n = store_old_keys(m->store, old, retired, STORE_OLD_KEYS_MAX);
    int r =
        pki_node_state_save_deks(m->state_dir, m->st.cluster_id, &cur, old, retired,
                                 n > STORE_OLD_KEYS_MAX ? STORE_OLD_KEYS_MAX : n, err, sizeof(err));
    pki_aead_key_clear(&cur);
    sw_erase(old, sizeof(old));
    if (r < 0)
        log_warn("data keys: %s", err);
    return r;
}

int mgr__datakey_load(struct mgr *m)
{
    /* the keys came with store_open_keys; a rotation was not finished: re-seal, and drop
     * the retired keys after a snapshot past what is applied now */
    if (m->st.n_dek_retired) {
        m->datakey_reseal = true;
        m->datakey_switch_index = store_applied_index(m->store);
        m->datakey_switch_ns = sw_now_monotonic_ns();
    }
    return 0;
}

/* The cluster object names the key that seals: take it up (every manager). */
static void take_up(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    if (mgr__get_cluster(m, &c) < 0)
        return;
    uint32_t want = c->data_key_id;
    mgr__cluster_free(c);
    if (!want || want == store_key_id(m->store))
        return;
    int r = store_use_key(m->store, want);
    if (r < 0) {
        log_error("the cluster seals under data key %08" PRIx32
                  ", which this manager never received; it cannot open new entries: demote "
                  "or remove it and join it again",
                  want);
        return;
    }
    store_drop_next_keys(m->store); /* of rotations that never took over */
    m->datakey_dirty = persist(m) < 0;
    m->datakey_reseal = true;
    /* every snapshot up to here may be sealed under the older key: the naming entry applies
     * (and a snapshot may be taken) before this tick takes the key up, and the store commits
     * what raft applied a little later */
    uint64_t at = store_applied_index(m->store);
    if (m->raft_inited)
        at = SW_MAX(at, SW_MAX(m->raft.last_applied, m->raft.log.snapshot.last_index));
    m->datakey_switch_index = at;
    m->datakey_switch_ns = sw_now_monotonic_ns();
    log_info("data key %08" PRIx32 " seals from now on; re-sealing the store", want);
}

/* How many keys that once sealed the store still holds. */
static unsigned retired_keys(struct mgr *m)
{
    struct pki_aead_key old[STORE_OLD_KEYS_MAX];
    bool retired[STORE_OLD_KEYS_MAX];
    unsigned n = store_old_keys(m->store, old, retired, STORE_OLD_KEYS_MAX), count = 0;
    sw_erase(old, sizeof(old));
    for (unsigned i = 0; i < n && i < STORE_OLD_KEYS_MAX; i++)
        count += retired[i];
    return count;
}

void mgr__datakey_tick(struct mgr *m)
{
    char err[256];
    if (m->datakey_check) {
        m->datakey_check = false;
        take_up(m);
    }
    if (m->datakey_dirty)
        m->datakey_dirty = persist(m) < 0;
    if (m->datakey_reseal && (m->datakey_reseal_fails == 0 || m->role_ticks % 50 == 0)) {
        int r = store_reseal(m->store, err, sizeof(err));
        if (r < 0) { /* again in 5 s */
            if (m->datakey_reseal_fails++ == 0)
                log_warn("data keys: cannot re-seal the store (trying again): %s", err);
            return;
        }
        m->datakey_reseal = false;
        m->datakey_reseal_fails = 0;
        log_info("data keys: re-sealed %d stored values under the current key", r);
        m->datakey_resealed = true;
    }
    /* the retired keys go once nothing on disk needs them: the store re-sealed, and a
     * snapshot (sealed under the current key) past both the switch and the last entry one
     * of them sealed replaces the raft entries they sealed; and not in the first seconds
     * (a leader elected just then may still seal a few entries under the old key) */
    uint64_t past = SW_MAX(m->datakey_switch_index, store_retired_used(m->store));
    if (m->datakey_resealed && m->raft_inited && m->raft.log.snapshot.last_index > past &&
        sw_now_monotonic_ns() - m->datakey_switch_ns > MGR_DATAKEY_DROP_NS && retired_keys(m) > 0) {
        store_drop_old_keys(m->store);
        m->datakey_resealed = false;
        if (persist(m) >= 0)
            log_info("data keys: the older key is gone (a snapshot superseded it)");
    }
}

static void on_store_event(const struct store_event *ev, void *userdata)
{
    struct mgr *m = userdata;
    if (ev->table == STORE_CLUSTER)
        m->datakey_check = true;
}

int mgr__datakey_start(struct mgr *m)
{
    m->datakey_check = true;
    return store_watch_add(m->store, on_store_event, m, &m->datakey_watch);
}

/* ------------------------------------------------------------------ Raft.AddDataKey */

static void h_add_data_key(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    if (!mgr__serving(m, call))
        return;
    /* only the raft leader hands out keys */
    if (peer->kind != NET_PEER_NODE ||
        mgr__raft_id_from_node_id(peer->id.node_id) != mgr__leader_raft_id(m))
        return net_call_reply(call, -EPERM, "only the raft leader hands out data keys", NULL, 0);
    Swarm__DataKey *req =
        (Swarm__DataKey *)mgr__request(call, &swarm__data_key__descriptor, payload, len);
    if (!req)
        return;
    struct pki_aead_key k = {.id = req->id};
    bool ok = req->id && req->key.len == sizeof(k.key);
    if (ok)
        memcpy(k.key, req->key.data, sizeof(k.key));
    sw_erase(req->key.data, req->key.len);
    swarm__data_key__free_unpacked(req, NULL);
    if (!ok)
        return net_call_reply(call, -EINVAL, "a data key is a nonzero id and 32 bytes", NULL, 0);
    int r = store_add_key(m->store, &k, false);
    if (r == -E2BIG) {
        /* full of next keys that failed rotations left (never named, so never sealed
         * anything; kept until then, as one may still be named by an entry of a deposed
         * leader): the newest rotation replaces them */
        store_drop_next_keys(m->store);
        r = store_add_key(m->store, &k, false);
        if (r >= 0)
            log_info("data keys: dropped the next keys of rotations that did not finish");
    }
    pki_aead_key_clear(&k);
    if (r == -E2BIG)
        return net_call_reply(call, r,
                              "this manager holds the most older data keys it can: let a "
                              "snapshot supersede them first",
                              NULL, 0);
    if (r < 0 && r != -EEXIST)
        return mgr__reply_errno(call, r, "cannot add the data key");
    if (r >= 0 && persist(m) < 0)
        return net_call_reply(call, -EIO, "cannot write the data keys", NULL, 0);
    net_call_reply(call, 0, NULL, NULL, 0);
}

/* ------------------------------------------------------------------ the rotation (leader) */

struct rotation;
struct push {
    struct rotation *rot;
    net_client *client;
    uint64_t raft_id;
    char addr[80];
};

struct rotation {
    struct mgr *m; /* NULL once the manager stopped */
    mgr_datakey_fn done;
    void *userdata;
    struct pki_aead_key key;
    unsigned pending;
    int status;
    char err[200];
    uv_timer_t timer;     /* a manager that never answers does not hold the rotation */
    struct push **pushes; /* in flight (NULL once ended) */
    unsigned n_pushes;
    bool naming; /* pushed; the cluster object update is queued or in flight */
};

static void rotation_closed(uv_handle_t *h)
{
    struct rotation *rot = h->data;
    pki_aead_key_clear(&rot->key);
    free(rot->pushes);
    free(rot);
}

static void rotation_free(struct rotation *rot)
{
    uv_close((uv_handle_t *)&rot->timer, rotation_closed);
}

static void rotation_timeout(uv_timer_t *t)
{
    struct rotation *rot = t->data;
    for (unsigned i = 0; i < rot->n_pushes; i++) {
        struct push *p = rot->pushes[i];
        if (p && p->client) {
            if (rot->status >= 0) {
                rot->status = -ETIMEDOUT;
                snprintf(rot->err, sizeof(rot->err),
                         "manager at %s did not take the data key in time", p->addr);
            }
            net_client_close(p->client); /* its callback ends the push */
        }
    }
}

static void rotation_pushed(struct rotation *rot);

static void push_end(struct push *p, int status, const char *err)
{
    struct rotation *rot = p->rot;
    for (unsigned i = 0; i < rot->n_pushes; i++)
        if (rot->pushes[i] == p)
            rot->pushes[i] = NULL;
    if (status < 0 && rot->status >= 0) {
        rot->status = status;
        snprintf(rot->err, sizeof(rot->err), "manager at %s did not take the data key: %s", p->addr,
                 err ? err : strerror(-status));
    }
    net_client *c = p->client;
    p->client = NULL;
    if (c)
        net_client_close(c);
    free(p);
    if (--rot->pending == 0)
        rotation_pushed(rot);
}

static void on_pushed(net_client *c, int status, const char *error, const uint8_t *payload,
                      size_t len, bool final, void *userdata)
{
    if (final)
        push_end(userdata, status, error);
}

static void on_push_connected(net_client *c, int status, const char *error, void *userdata)
{
    struct push *p = userdata;
    if (status < 0)
        return push_end(p, status, error);
    const struct net_peer *peer = net_client_server_peer(c);
    if (mgr__raft_id_from_node_id(peer->id.node_id) != p->raft_id)
        return push_end(p, -EPERM, "another node answers at that address");
    Swarm__DataKey req = SWARM__DATA_KEY__INIT;
    req.id = p->rot->key.id;
    req.key.data = p->rot->key.key;
    req.key.len = sizeof(p->rot->key.key);
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call(c, "Raft.AddDataKey", buf, len, on_pushed, p, NULL);
    if (buf)
        sw_erase(buf, len);
    if (r < 0)
        push_end(p, r, NULL);
}

static int name_key(struct mgr *m, Swarm__Cluster *c, void *userdata)
{
    struct rotation *rot = userdata;
    c->data_key_id = rot->key.id;
    return 0;
}

static void named(struct mgr *m, int status, void *userdata)
{
    struct rotation *rot = userdata;
    m->rotation = NULL;
    if (status < 0) {
        store_drop_next_keys(m->store);
        (void)persist(m);
    }
    if (status >= 0) {
        log_info("rotated the data key: %08" PRIx32 " seals from now on", rot->key.id);
        take_up(m); /* here at once; the other managers as they apply it */
    }
    rot->done(m, status, status < 0 ? "cannot name the new data key in the cluster object" : "",
              rot->userdata);
    rotation_free(rot);
}

static void rotation_pushed(struct rotation *rot)
{
    struct mgr *m = rot->m;
    int r = rot->status;
    uv_timer_stop(&rot->timer);
    if (!m) { /* the manager stopped */
        rot->done(NULL, -ECANCELED, "the manager is stopping", rot->userdata);
        return rotation_free(rot);
    }
    /* every manager holds the key: name it */
    if (r >= 0 && (r = mgr__cluster_update(m, name_key, named, rot)) >= 0)
        rot->naming = true;
    if (r < 0) {
        if (rot->err[0])
            log_warn("data key rotation: %s", rot->err);
        store_drop_next_keys(m->store); /* it never took over: nothing needs it */
        (void)persist(m);
        m->rotation = NULL;
        rot->done(m, r, rot->err[0] ? rot->err : strerror(-r), rot->userdata);
        rotation_free(rot);
    }
}

int mgr__datakey_rotate(struct mgr *m, mgr_datakey_fn done, void *userdata, char *errmsg,
                        size_t size)
{
    uint64_t now = sw_now_monotonic_ns();
    const struct raft_configuration *cfg = &m->raft.configuration;
    if (m->rotation) {
        snprintf(errmsg, size, "a data key rotation is under way already");
        return -EBUSY;
    }
    for (unsigned i = 0; i < cfg->n; i++) {
        const struct raft_server *s = &cfg->servers[i];
        uint64_t seen = mgr__raft_last_contact(m, s->id);
        if (s->id != m->st.raft_id && (!seen || now - seen > MGR_REACHABLE_NS)) {
            snprintf(errmsg, size,
                     "the manager at %s is unreachable: every manager must take the new data "
                     "key; bring it back, or demote or remove it, then rotate",
                     s->address);
            return -EHOSTUNREACH;
        }
    }
    struct rotation *rot = calloc(1, sizeof(*rot));
    if (rot && !(rot->pushes = calloc(cfg->n ? cfg->n : 1, sizeof(*rot->pushes)))) {
        free(rot);
        rot = NULL;
    }
    if (!rot) {
        snprintf(errmsg, size, "out of memory");
        return -ENOMEM;
    }
    rot->m = m;
    rot->done = done;
    rot->userdata = userdata;
    /* full: next keys of earlier rotations that did not finish go (kept otherwise: one a
     * deposed leader pushed may still be named by an entry this log holds) */
    struct pki_aead_key old[STORE_OLD_KEYS_MAX];
    if (store_old_keys(m->store, old, NULL, STORE_OLD_KEYS_MAX) >= STORE_OLD_KEYS_MAX)
        store_drop_next_keys(m->store);
    int r =
        store_old_keys(m->store, old, NULL, STORE_OLD_KEYS_MAX) >= STORE_OLD_KEYS_MAX ? -E2BIG : 0;
    sw_erase(old, sizeof(old));
    if (r >= 0)
        r = pki_aead_key_generate(&rot->key);
    if (r < 0) {
        snprintf(errmsg, size, "%s",
                 r == -E2BIG ? "this manager holds the most older data keys it can: let a "
                               "snapshot supersede them first"
                             : "cannot make a new data key");
        free(rot->pushes);
        free(rot);
        return r;
    }
    /* the leader holds it (as the next key) before any push: a manager that joins meanwhile
     * gets it with the others in its Raft.Join answer */
    if ((r = store_add_key(m->store, &rot->key, false)) < 0 || (r = persist(m)) < 0) {
        store_drop_next_keys(m->store);
        snprintf(errmsg, size, "cannot keep the new data key here: %s", strerror(-r));
        pki_aead_key_clear(&rot->key);
        free(rot->pushes);
        free(rot);
        return r;
    }
    m->rotation = rot;
    uv_timer_init(m->loop, &rot->timer);
    rot->timer.data = rot;
    uv_timer_start(&rot->timer, rotation_timeout, 2 * PUSH_TIMEOUT_MS, 0);
    rot->pending = 1; /* held while the pushes start */
    for (unsigned i = 0; i < cfg->n; i++) {
        const struct raft_server *s = &cfg->servers[i];
        struct sw_addr addr;
        if (s->id == m->st.raft_id)
            continue;
        struct push *p = calloc(1, sizeof(*p));
        if (!p) {
            rot->status = -ENOMEM;
            break;
        }
        p->rot = rot;
        p->raft_id = s->id;
        rot->pushes[rot->n_pushes++] = p;
        snprintf(p->addr, sizeof(p->addr), "%s", s->address);
        rot->pending++;
        struct net_expect expect = {.cluster_id = m->st.cluster_id, .manager = true};
        if (sw_addr_parse(s->address, -1, 0, &addr) < 0) {
            push_end(p, -EINVAL, "bad raft address");
            continue;
        }
        r = net_client_connect_tcp_expect(m->loop, &addr, m->client_ctx, &expect, PUSH_TIMEOUT_MS,
                                          on_push_connected, p, &p->client);
        if (r < 0) {
            p->client = NULL;
            push_end(p, r, NULL);
        }
    }
    if (--rot->pending == 0)
        rotation_pushed(rot);
    return 0;
}

void mgr__datakey_stop(struct mgr *m)
{
    struct rotation *rot = m->rotation;
    m->rotation = NULL;
    if (rot && !rot->naming) { /* it ends without the manager: its pushes are cut */
        m->rotation = NULL;
        rot->m = NULL;
        rot->pending++; /* held while the pushes are closed */
        for (unsigned i = 0; i < rot->n_pushes; i++)
            if (rot->pushes[i] && rot->pushes[i]->client)
                net_client_close(rot->pushes[i]->client);
        if (--rot->pending == 0)
            rotation_pushed(rot);
    }
    if (m->datakey_watch) {
        store_watch_remove(m->datakey_watch);
        m->datakey_watch = NULL;
    }
}

int mgr__datakey_register(struct mgr *m)
{
    return net_server_register(m->server, "Raft.AddDataKey", NET_AUTH_MANAGER, h_add_data_key, m);
}
