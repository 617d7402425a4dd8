/* Typed reads of store objects and the node object describing this machine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

static void wipe_str(char *s)
{
    if (s && s != protobuf_c_empty_string)
        sw_erase(s, strlen(s));
}

void mgr__cluster_free(Swarm__Cluster *c)
{
    if (!c)
        return;
    if (c->root_ca) {
        sw_erase(c->root_ca->ca_key_pem.data, c->root_ca->ca_key_pem.len);
        sw_erase(c->root_ca->rotation_old_key_pem.data, c->root_ca->rotation_old_key_pem.len);
    }
    if (c->join_tokens) {
        wipe_str(c->join_tokens->worker);
        wipe_str(c->join_tokens->manager);
    }
    if (c->unlock_key.data)
        sw_erase(c->unlock_key.data, c->unlock_key.len);
    swarm__cluster__free_unpacked(c, NULL);
}

uint64_t mgr__raft_id_from_node_id(const char *node_id)
{
    uint8_t raw[16];
    uint64_t id = 0;
    if (sw_base36_decode(node_id, raw, sizeof(raw)) < 0)
        return 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | raw[i];
    id &= 0x7fffffffffffffffULL; /* keep it positive for tools that print signed */
    return id ? id : 1;
}

int mgr__get_cluster(struct mgr *m, Swarm__Cluster **ret)
{
    store_txn *t;
    uint8_t *val = NULL;
    size_t len = 0;
    int r = store_read_begin(m->store, &t);
    if (r < 0)
        return r;
    r = store_get(t, STORE_CLUSTER, m->st.cluster_id, &val, &len);
    store_read_end(t);
    if (r < 0)
        return r;
    Swarm__Cluster *c = swarm__cluster__unpack(NULL, len, val);
    sw_erase(val, len);
    free(val);
    if (!c)
        return -EBADMSG;
    if (!c->meta || !c->spec || !c->root_ca || !c->join_tokens) {
        mgr__cluster_free(c);
        return -EBADMSG;
    }
    *ret = c;
    return 0;
}

int mgr__get_node(struct mgr *m, const char *id, Swarm__Node **ret)
{
    store_txn *t;
    uint8_t *val = NULL;
    size_t len = 0;
    int r = store_read_begin(m->store, &t);
    if (r < 0)
        return r;
    r = store_get(t, STORE_NODES, id, &val, &len);
    store_read_end(t);
    if (r < 0)
        return r;
    Swarm__Node *n = swarm__node__unpack(NULL, len, val);
    free(val);
    if (!n)
        return -EBADMSG;
    *ret = n;
    return 0;
}

int mgr__set_str(char **slot, const char *v)
{
    char *d = strdup(v ? v : "");
    if (!d)
        return -ENOMEM;
    if (*slot && *slot != protobuf_c_empty_string)
        free(*slot);
    *slot = d;
    return 0;
}

void mgr__fill_cert_info(Swarm__NodeCertificate *c, const char *cert_pem)
{
    struct pki_identity id;
    c->cert_pem = strdup(cert_pem);
    if (pki_identity_from_pem(cert_pem, strlen(cert_pem), &id) >= 0) {
        c->issuer = strdup(id.issuer);
        c->serial = strdup(id.serial);
        c->not_before = id.not_before_ns;
        c->not_after = id.not_after_ns;
        c->authority_key_id = strdup(id.authority_key_id);
    }
}

/* A fresh node object for this machine; free with swarm__node__free_unpacked(n, NULL). */
int mgr__self_node(struct mgr *m, Swarm__Node **ret)
{
    Swarm__Node *n = calloc(1, sizeof(*n));
    Swarm__Meta *meta = calloc(1, sizeof(*meta));
    Swarm__Resources *res = calloc(1, sizeof(*res));
    Swarm__ManagerStatus *ms = calloc(1, sizeof(*ms));
    Swarm__NodeCertificate *cert = calloc(1, sizeof(*cert));
    char addr[80];
    struct utsname u;

    if (!n || !meta || !res || !ms || !cert) {
        free(n);
        free(meta);
        free(res);
        free(ms);
        free(cert);
        return -ENOMEM;
    }
    swarm__node__init(n);
    swarm__meta__init(meta);
    swarm__resources__init(res);
    swarm__manager_status__init(ms);
    swarm__node_certificate__init(cert);

    uint64_t now = sw_now_realtime_ns();
    meta->created_at = now;
    meta->updated_at = now;
    n->meta = meta;
    n->id = strdup(m->st.node_id);
    n->role = n->desired_role = m->st.role == PKI_ROLE_MANAGER ? SWARM__NODE_ROLE__ROLE_MANAGER
                                                               : SWARM__NODE_ROLE__ROLE_WORKER;
    n->availability = SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE;
    n->hostname = strdup(m->st.hostname);
    sw_addr_format(&m->st.advertise_addr, addr, sizeof(addr));
    n->addr = strdup(addr);
    n->state = SWARM__NODE_STATE__NODE_READY;
    n->state_message = strdup("");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    res->nano_cpus = (ncpu > 0 ? ncpu : 1) * 1000000000LL;
    res->memory_bytes = pages > 0 && psize > 0 ? (int64_t)pages * psize : 0;
    n->resources = res;
    if (m->st.role == PKI_ROLE_MANAGER) {
        ms->raft_id = m->st.raft_id;
        ms->addr = strdup(addr);
        ms->leader = mgr__is_leader(m);
        ms->reachability = SWARM__REACHABILITY__REACH_REACHABLE;
        n->manager_status = ms;
    } else {
        free(ms);
    }
    mgr__fill_cert_info(cert, m->st.node_cert_pem);
    n->certificate = cert;
    n->os = strdup("linux");
    n->arch = strdup(uname(&u) == 0 ? u.machine : "unknown");
    if (!n->id || !n->hostname || !n->addr || !n->os || !n->arch || !cert->cert_pem) {
        /* protobuf-c's free handles NULL strings and our malloc'd fields alike */
        swarm__node__free_unpacked(n, NULL);
        return -ENOMEM;
    }
    *ret = n;
    return 0;
}

/* ------------------------------------------------------------------ RPC helpers */

bool mgr__serving(struct mgr *m, net_call *call)
{
    if (m->serving)
        return true;
    net_call_reply(call, -EAGAIN, "the manager is starting or stopping; try again", NULL, 0);
    return false;
}

static void reply_packed(net_call *call, const ProtobufCMessage *msg, bool wipe)
{
    uint8_t *buf;
    size_t len;
    int r = proto_pack(msg, &buf, &len);
    if (r < 0) {
        net_call_reply(call, r, "out of memory", NULL, 0);
        return;
    }
    net_call_reply(call, 0, NULL, buf, len);
    if (wipe)
        sw_erase(buf, len);
    free(buf);
}

void mgr__reply_msg(net_call *call, const ProtobufCMessage *msg)
{
    reply_packed(call, msg, false);
}

void mgr__reply_msg_secret(net_call *call, const ProtobufCMessage *msg)
{
    reply_packed(call, msg, true);
}

const char *mgr__strerror(int r)
{
    if (r == -ENOTCONN)
        return "the raft leadership was lost before the change was acknowledged (no quorum of "
               "managers?); it may or may not have been applied";
    return strerror(-r);
}

void mgr__reply_errno(net_call *call, int r, const char *what)
{
    char err[256];
    snprintf(err, sizeof(err), "%s: %s", what, mgr__strerror(r));
    net_call_reply(call, r, err, NULL, 0);
}

ProtobufCMessage *mgr__request(net_call *call, const ProtobufCMessageDescriptor *desc,
                               const uint8_t *payload, size_t len)
{
    char err[160];
    ProtobufCMessage *req = protobuf_c_message_unpack(desc, NULL, len, payload);
    if (req && proto_strict(req))
        return req;
    snprintf(err, sizeof(err), "malformed %s%s", desc->short_name,
             req ? ": unknown or invalid fields" : "");
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    net_call_reply(call, -EINVAL, err, NULL, 0);
    return NULL;
}

/* ------------------------------------------------------------------ listing */

struct collect_ctx {
    struct mgr_objs *o;
};

static int collect(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    struct mgr_objs *o = userdata;
    ProtobufCMessage *msg = protobuf_c_message_unpack(o->desc, NULL, len, value);
    if (!msg)
        return -EBADMSG;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        ProtobufCMessage **v = realloc(o->v, cap * sizeof(*v));
        if (!v) {
            protobuf_c_message_free_unpacked(msg, NULL);
            return -ENOMEM;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = msg;
    return 0;
}

int mgr__list(struct mgr *m, enum store_table table, const ProtobufCMessageDescriptor *desc,
              struct mgr_objs *ret)
{
    store_txn *t;
    memset(ret, 0, sizeof(*ret));
    ret->desc = desc;
    int r = store_read_begin(m->store, &t);
    if (r < 0)
        return r;
    r = store_foreach(t, table, collect, ret);
    store_read_end(t);
    if (r < 0)
        mgr__objs_free(ret);
    return r;
}

int mgr__list_index(struct mgr *m, enum store_index index, const char *key, struct mgr_objs *ret)
{
    store_txn *t;
    memset(ret, 0, sizeof(*ret));
    ret->desc = &swarm__task__descriptor;
    int r = store_read_begin(m->store, &t);
    if (r < 0)
        return r;
    r = store_foreach_index(t, index, key, collect, ret);
    store_read_end(t);
    if (r < 0)
        mgr__objs_free(ret);
    return r;
}

void mgr__objs_free(struct mgr_objs *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->v[i])
            protobuf_c_message_free_unpacked(o->v[i], NULL);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

ProtobufCMessage *mgr__objs_take(struct mgr_objs *o, size_t i)
{
    ProtobufCMessage *msg = o->v[i];
    o->v[i] = NULL;
    return msg;
}

ssize_t mgr__objs_find(struct mgr_objs *o, const char *ref, mgr_name_fn name_of, char *err,
                       size_t size, const char *what)
{
    size_t ref_len = strlen(ref), matches = 0;
    ssize_t found = -1;
    if (ref_len == 0) {
        snprintf(err, size, "a %s id or name is required", what);
        return -EINVAL;
    }
    /* Docker's order: the full ID, then an exact name, then a unique ID prefix */
    size_t named = 0;
    ssize_t by_name = -1;
    for (size_t i = 0; i < o->n; i++) {
        const char *id = NULL, *name = NULL;
        name_of(o->v[i], &id, &name);
        if (strcmp(id, ref) == 0)
            return (ssize_t)i;
        if (name && strcmp(name, ref) == 0) {
            by_name = (ssize_t)i;
            named++;
        } else if (strncmp(id, ref, ref_len) == 0) {
            found = (ssize_t)i;
            matches++;
        }
    }
    if (named == 1)
        return by_name;
    matches += named;
    if (matches == 1)
        return found >= 0 ? found : by_name;
    if (matches > 1) {
        snprintf(err, size, "%s %s is ambiguous (%zu matches); use the full ID", what, ref,
                 matches);
        return -EINVAL;
    }
    snprintf(err, size, "no such %s: %s", what, ref);
    return -ENOENT;
}
