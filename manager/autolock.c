/* Autolock on a manager: the unlock key in the cluster object (turned on or off by
 * Control.UpdateCluster, shown or rotated by Control.GetUnlockKey), and every manager
 * keeping its own KEK file sealed under the cluster's current key. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "manager/internal.h"

static void clear_key_bytes(ProtobufCBinaryData *b)
{
    if (b->data) {
        sw_erase(b->data, b->len);
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
}

int mgr__autolock_edit(Swarm__Cluster *c, bool on, char ret_key[PKI_UNLOCK_KEY_LEN + 1])
{
    ret_key[0] = '\0';
    if (!on) {
        c->spec->autolock = false;
        clear_key_bytes(&c->unlock_key);
        return 0;
    }
    if (c->spec->autolock && c->unlock_key.len == sizeof(((struct pki_unlock_key *)0)->key))
        return 0; /* already on: the key stays (unlock-key shows it) */
    struct pki_unlock_key k;
    int r = pki_unlock_key_generate(&k);
    if (r < 0)
        return r;
    uint8_t *bytes = malloc(sizeof(k.key));
    if (!bytes) {
        pki_unlock_key_clear(&k);
        return -ENOMEM;
    }
    memcpy(bytes, k.key, sizeof(k.key));
    r = pki_unlock_key_format(&k, ret_key);
    pki_unlock_key_clear(&k);
    if (r < 0) {
        sw_erase(bytes, sizeof(k.key));
        free(bytes);
        return r;
    }
    clear_key_bytes(&c->unlock_key);
    c->unlock_key.data = bytes;
    c->unlock_key.len = sizeof(k.key);
    c->spec->autolock = true;
    return 0;
}

/* The unlock key the cluster wants (true) or none (false). */
static int wanted_key(struct mgr *m, struct pki_unlock_key *ret, bool *ret_on)
{
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    bool on = c->spec && c->spec->autolock && c->unlock_key.len == sizeof(ret->key);
    if (on)
        memcpy(ret->key, c->unlock_key.data, sizeof(ret->key));
    mgr__cluster_free(c);
    *ret_on = on;
    return 0;
}

void mgr__autolock_check(struct mgr *m)
{
    struct pki_unlock_key want, have;
    bool on = false;
    char err[512];
    m->autolock_check = false;
    if (wanted_key(m, &want, &on) < 0)
        return;
    int locked = pki_node_state_locked(m->state_dir);
    bool held = pki_node_state_unlock_key(&have);
    /* locked == 2: a change of KEK was left half-done (kek.new): set_lock finishes it */
    bool ok = on ? locked == 1 && held && pki_unlock_key_equal(&want, &have) : locked == 0;
    pki_unlock_key_clear(&have);
    if (!ok) {
        int r = pki_node_state_set_lock(m->state_dir, on ? &want : NULL, err, sizeof(err));
        if (r < 0) {
            log_warn("autolock: %s", err);
            m->autolock_check = true; /* again at the next tick */
        } else if (on) {
            log_info("autolock: this manager's keys are locked under the %s unlock key",
                     locked == 1 ? "new" : "cluster's");
        } else {
            log_info("autolock is off: this manager's key-encryption key is kept in clear");
        }
    }
    pki_unlock_key_clear(&want);
}

static void on_store_event(const struct store_event *ev, void *userdata)
{
    struct mgr *m = userdata;
    if (ev->table == STORE_CLUSTER)
        m->autolock_check = true;
}

int mgr__autolock_start(struct mgr *m)
{
    m->autolock_check = true;
    return store_watch_add(m->store, on_store_event, m, &m->autolock_watch);
}

void mgr__autolock_stop(struct mgr *m)
{
    if (m->autolock_watch) {
        store_watch_remove(m->autolock_watch);
        m->autolock_watch = NULL;
    }
}

/* ------------------------------------------------------------------ Control.GetUnlockKey */

struct key_call {
    net_call *call;
};

static void reply_key(struct mgr *m, net_call *call)
{
    struct pki_unlock_key k;
    bool on = false;
    char s[PKI_UNLOCK_KEY_LEN + 1];
    int r = wanted_key(m, &k, &on);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot read the cluster object");
    if (!on)
        return net_call_reply(call, -ENOENT,
                              "autolock is off: there is no unlock key (turn it on with "
                              "'swarmctl cluster update --autolock=true')",
                              NULL, 0);
    r = pki_unlock_key_format(&k, s);
    pki_unlock_key_clear(&k);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot format the unlock key");
    Swarm__UnlockKeyResponse resp = SWARM__UNLOCK_KEY_RESPONSE__INIT;
    resp.unlock_key = s;
    mgr__reply_msg_secret(call, &resp.base);
    sw_erase(s, sizeof(s));
}

static int rotate_mutate(struct mgr *m, Swarm__Cluster *c, void *userdata)
{
    char s[PKI_UNLOCK_KEY_LEN + 1];
    if (!c->spec || !c->spec->autolock)
        return -ENOENT;
    c->spec->autolock = false; /* so that the edit makes a new key */
    int r = mgr__autolock_edit(c, true, s);
    sw_erase(s, sizeof(s));
    return r;
}

static void rotate_committed(struct mgr *m, int status, void *userdata)
{
    struct key_call *kc = userdata;
    net_call *call = kc->call;
    free(kc);
    if (status == -ENOENT)
        return net_call_reply(call, -ENOENT, "autolock is off: there is no unlock key to rotate",
                              NULL, 0);
    if (status < 0)
        return mgr__reply_errno(call, status, "cannot rotate the unlock key");
    log_info("rotated the unlock key");
    mgr__autolock_check(m); /* this manager re-seals now; the others as they apply it */
    reply_key(m, call);
}

static void h_get_unlock_key(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    if (!mgr__serving(m, call))
        return;
    Swarm__UnlockKeyRequest *req = (Swarm__UnlockKeyRequest *)mgr__request(
        call, &swarm__unlock_key_request__descriptor, payload, len);
    if (!req)
        return;
    bool rotate = req->rotate;
    swarm__unlock_key_request__free_unpacked(req, NULL);
    if (!rotate)
        return reply_key(m, call);
    struct key_call *kc = calloc(1, sizeof(*kc));
    if (!kc)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    kc->call = call;
    int r = mgr__cluster_update(m, rotate_mutate, rotate_committed, kc);
    if (r < 0) {
        free(kc);
        mgr__reply_errno(call, r, "cannot rotate the unlock key");
    }
}

/* A manager that is running is not locked. */
static void h_unlock(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    net_call_reply(call, -EALREADY, "this manager is not locked", NULL, 0);
}

int mgr__autolock_register(struct mgr *m)
{
    int r =
        mgr__register_leader_only(m, "Control.GetUnlockKey", NET_AUTH_MANAGER, h_get_unlock_key);
    if (r >= 0)
        r = net_server_register(m->server, "Control.Unlock", NET_AUTH_LOCAL, h_unlock, m);
    return r;
}
