/* A manager node's life: create a cluster or resume one, serve, stop. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "net/cfssl-client.h"
#include "proto/frame.h"

#define LEADER_WAIT_MS 10000
#define ROLE_CHECK_MS 100

static void fail(struct mgr *m, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(struct mgr *m, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errmsg, sizeof(m->errmsg), fmt, ap);
    va_end(ap);
    if (m->ready) {
        mgr_ready_fn cb = m->ready;
        m->ready = NULL;
        cb(m, r, m->errmsg, m->ready_userdata);
    }
}

static void fatal_timer_cb(uv_timer_t *t)
{
    struct mgr *m = t->data;
    char msg[sizeof(m->errmsg)];
    memcpy(msg, m->errmsg, sizeof(msg));
    if (m->ready)
        fail(m, m->fatal_status, "%s", msg);
    else if (m->fatal)
        m->fatal(m, m->fatal_status, m->errmsg, m->fatal_userdata);
}

void mgr__fatal(struct mgr *m, int status, const char *fmt, ...)
{
    va_list ap;
    if (m->fatal_status)
        return;
    m->fatal_status = status ? status : -EIO;
    va_start(ap, fmt);
    vsnprintf(m->errmsg, sizeof(m->errmsg), fmt, ap);
    va_end(ap);
    m->serving = false;
    if (!m->stopping)
        uv_timer_start(&m->fatal_timer, fatal_timer_cb, 0, 0);
}

void mgr_set_fatal_handler(mgr *m, mgr_fatal_fn fn, void *userdata)
{
    m->fatal = fn;
    m->fatal_userdata = userdata;
}

/* The leader runs the dispatcher (node sessions) and the orchestrator. */
static void start_leading(struct mgr *m)
{
    m->leading = true;
    m->taking_over = false;
    mgr__dispatcher_start(m);
    int r = mgr__orchestrator_start(m);
    if (r < 0)
        log_warn_errno(r, "cannot watch the store: services will not be reconciled");
}

static void stop_leading(struct mgr *m)
{
    log_info("this manager is no longer the raft leader");
    m->leading = false;
    mgr__orchestrator_stop(m);
    mgr__dispatcher_stop(m);
    mgr__names_clear(m); /* the next leadership reads them afresh */
}

static int propose_self_update(struct mgr *m);

/* Leadership moves between managers: the new leader takes over the dispatcher and the
 * orchestrator (after recording itself, as on a resume), a former leader lets go. */
/* The cluster's snapshot interval, on every manager (each takes its own snapshots). An
 * explicit one in the configuration (tests) holds until the cluster setting changes. */
static void apply_snapshot_interval(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    if (mgr__get_cluster(m, &c) < 0)
        return;
    uint64_t n = c->spec->snapshot_interval;
    mgr__cluster_free(c);
    if (!n || n == m->seen_snapshot_interval)
        return;
    bool first = m->seen_snapshot_interval == 0;
    m->seen_snapshot_interval = n;
    if (first && m->snapshot_threshold_explicit)
        return;
    raft_set_snapshot_threshold(&m->raft, (unsigned)n);
    /* entries kept behind a snapshot for slow followers: up to 500, half the interval */
    raft_set_snapshot_trailing(&m->raft, (unsigned)SW_MIN(n / 2, (uint64_t)500));
    log_debug("raft: snapshot every %llu entries", (unsigned long long)n);
}

static void role_timer_cb(uv_timer_t *t)
{
    struct mgr *m = t->data;
    if (m->stopping || !m->serving)
        return;
    if (++m->role_ticks % 10 == 1) {
        apply_snapshot_interval(m);
        mgr__rootca_tick(m);
    }
    if (m->role_ticks % 10 == 5) /* a snapshot install changes the store without events */
        m->autolock_check = m->datakey_check = true;
    if (m->autolock_check)
        mgr__autolock_check(m);
    mgr__datakey_tick(m);
    mgr__forward_check(m);
    bool leader = mgr__is_leader(m);
    if (leader && !m->leading && !m->taking_over) {
        log_info("this manager is now the raft leader");
        m->taking_over = true;
        int r = mgr__ca_reload(m);
        if (r >= 0)
            r = propose_self_update(m);
        if (r < 0) {
            log_warn_errno(r, "cannot take over as leader");
            m->taking_over = false;
        }
    } else if (!leader && m->leading) {
        stop_leading(m);
    }
}

static void report_ready(struct mgr *m)
{
    uv_timer_start(&m->role_timer, role_timer_cb, ROLE_CHECK_MS, ROLE_CHECK_MS);
    if (m->ready) {
        mgr_ready_fn cb = m->ready;
        m->ready = NULL;
        cb(m, 0, "", m->ready_userdata);
    }
}

static void become_ready(struct mgr *m)
{
    m->serving = true;
    if (mgr__is_leader(m))
        start_leading(m);
    report_ready(m);
}

/* A manager that is not the leader serves reads from its replica of the store. */
static void become_follower(struct mgr *m)
{
    log_info("following the raft leader");
    m->serving = true;
    report_ready(m);
}

int mgr_state_probe(const char *state_dir, enum mgr_state_kind *ret, char *node_id,
                    char *cluster_id)
{
    struct pki_node_state st;
    char err[256];
    char path[4096];
    int r = sw_path_join(path, sizeof(path), state_dir, MGR_STATE_FILE);
    if (r < 0)
        return r;
    if (!sw_file_exists(path)) {
        *ret = MGR_STATE_EMPTY;
        return 0;
    }
    r = pki_node_state_load(state_dir, &st, err, sizeof(err));
    if (r >= 0) {
        if (node_id)
            memcpy(node_id, st.node_id, SW_ID_LEN + 1);
        if (cluster_id)
            memcpy(cluster_id, st.cluster_id, SW_ID_LEN + 1);
    }
    pki_node_state_finish(&st);
    *ret = r >= 0 ? MGR_STATE_NODE : MGR_STATE_DAMAGED;
    return 0;
}

/* True if dir/sub exists and holds anything. */
static bool dir_has_entries(const char *dir, const char *sub)
{
    char path[4096];
    if (sw_path_join(path, sizeof(path), dir, sub) < 0)
        return false;
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)))
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return found;
}

/* Choose the address to advertise when none was given: the listen address if it is a
 * specific one, else the machine's only non-loopback IPv4 address. */
static int choose_advertise(const struct sw_addr *listen, struct sw_addr *ret, char *errmsg,
                            size_t size)
{
    if (strcmp(listen->host, "0.0.0.0") != 0 && strcmp(listen->host, "::") != 0) {
        *ret = *listen;
        return 0;
    }
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) < 0) {
        snprintf(errmsg, size, "cannot list network interfaces: %s; use --advertise-addr",
                 strerror(errno));
        return -errno;
    }
    char found[SW_ADDR_HOST_MAX] = "";
    int n = 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        char buf[SW_ADDR_HOST_MAX];
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, sizeof(buf));
        if (n == 0 || strcmp(buf, found) != 0) {
            if (n == 0)
                memcpy(found, buf, sizeof(buf));
            n++;
        }
    }
    freeifaddrs(ifa);
    if (n != 1) {
        snprintf(errmsg, size,
                 n == 0 ? "could not choose an IP address to advertise: this machine has no "
                          "non-loopback IPv4 address; use --advertise-addr"
                        : "could not choose an IP address to advertise: this machine has several; "
                          "use --advertise-addr");
        return -EADDRNOTAVAIL;
    }
    ret->family = AF_INET;
    memcpy(ret->host, found, sizeof(found));
    ret->port = listen->port;
    return 0;
}

/* A new node key and its CSR. */
static int new_node_key(struct pki_node_state *st, char **ret_csr, char *errmsg, size_t size)
{
    int r = pki_key_generate(&st->node_key);
    if (r >= 0)
        r = pki_csr_create(st->node_key, ret_csr);
    if (r < 0)
        snprintf(errmsg, size, "cannot create the node key: %s", strerror(-r));
    return r;
}

/* init --external-ca: the given root, and this node's certificate from the signer. */
static int prepare_external(struct mgr *m, const struct mgr_config *cfg, char *errmsg, size_t size)
{
    struct pki_node_state *st = &m->st;
    _cleanup_free_ char *csr = NULL;
    char err[512] = "";
    const char *root = cfg->external_ca_cert_pem;
    char kid[65];
    if (!root || pki_cert_key_id(root, strlen(root), kid) < 0) {
        snprintf(errmsg, size,
                 "--external-ca-cert must be the signer's root CA certificate (PEM, "
                 "with a subject key identifier)");
        return -EINVAL;
    }
    int r = new_node_key(st, &csr, errmsg, size);
    if (r < 0)
        return r;
    struct pki_sign_request req = {.node_id = st->node_id,
                                   .cluster_id = st->cluster_id,
                                   .role = PKI_ROLE_MANAGER,
                                   .validity_ns = cfg->cert_expiry_ns};
    r = net_cfssl_sign(cfg->external_ca_url, NULL, NULL, NULL, NULL, 10000, csr, &req, root,
                       &st->node_cert_pem, err, sizeof(err));
    if (r < 0) {
        snprintf(errmsg, size, "the external CA at %s did not sign this manager's certificate: %s",
                 cfg->external_ca_url, err);
        return r;
    }
    if (!(st->root_ca_pem = strdup(root)) || !(m->external_ca_url = strdup(cfg->external_ca_url)))
        return -ENOMEM;
    return 0;
}

/* Everything a new cluster needs, in memory: IDs, keys, root CA, this node's certificate. */
static int prepare_new(struct mgr *m, const struct mgr_config *cfg, char *errmsg, size_t size)
{
    struct pki_node_state *st = &m->st;
    int r;
    _cleanup_free_ char *csr = NULL;

    if ((r = sw_id_generate(st->node_id)) < 0 || (r = sw_id_generate(st->cluster_id)) < 0 ||
        (r = pki_aead_key_generate(&st->kek)) < 0 || (r = pki_aead_key_generate(&st->dek)) < 0) {
        snprintf(errmsg, size, "cannot generate identifiers and keys: %s", strerror(-r));
        return r;
    }
    st->raft_id = mgr__raft_id_from_node_id(st->node_id);
    st->role = PKI_ROLE_MANAGER;
    if (cfg->external_ca_url)
        return prepare_external(m, cfg, errmsg, size);
    r = pki_ca_create(&m->ca);
    if (r < 0) {
        snprintf(errmsg, size, "cannot create the root CA: %s", strerror(-r));
        return r;
    }
    r = new_node_key(st, &csr, errmsg, size);
    if (r < 0)
        return r;
    struct pki_sign_request req = {.node_id = st->node_id,
                                   .cluster_id = st->cluster_id,
                                   .role = PKI_ROLE_MANAGER,
                                   .validity_ns = cfg->cert_expiry_ns};
    char err[256] = "";
    r = pki_ca_sign_csr(m->ca, csr, strlen(csr), &req, &st->node_cert_pem, err, sizeof(err));
    if (r < 0) {
        snprintf(errmsg, size, "cannot sign the node certificate: %s", err);
        return r;
    }
    st->root_ca_pem = strdup(pki_ca_cert_pem(m->ca));
    if (!st->root_ca_pem)
        return -ENOMEM;
    return 0;
}

/* The first raft entry: the cluster object and this node. */
static int propose_cluster(struct mgr *m, mgr_commit_fn cb)
{
    const struct pki_node_state *st = &m->st;
    _cleanup_free_ char *key_pem = NULL;
    size_t key_len = 0;
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    char wtok[PKI_TOKEN_LEN + 1], mtok[PKI_TOKEN_LEN + 1];
    const char *bundle = st->root_ca_pem;
    _cleanup_free_ uint8_t *cbuf = NULL, *nbuf = NULL;
    size_t clen = 0, nlen = 0;
    Swarm__Node *node = NULL;
    int r;

    if ((m->ca && (r = pki_key_to_pem(pki_ca_key(m->ca), &key_pem, &key_len)) < 0) ||
        (r = pki_ca_digest(bundle, strlen(bundle), digest)) < 0 ||
        (r = pki_token_generate(bundle, strlen(bundle), wtok)) < 0 ||
        (r = pki_token_generate(bundle, strlen(bundle), mtok)) < 0)
        goto out;

    uint64_t now = sw_now_realtime_ns();
    Swarm__Meta meta = SWARM__META__INIT;
    meta.created_at = meta.updated_at = now;
    Swarm__ClusterSpec spec = SWARM__CLUSTER_SPEC__INIT;
    spec.name = "default";
    spec.cert_expiry_ns = m->cert_expiry_ns ? m->cert_expiry_ns : PKI_CERT_VALIDITY_DEFAULT_NS;
    spec.heartbeat_period_ns =
        m->init_heartbeat_ns ? m->init_heartbeat_ns : MGR_HEARTBEAT_DEFAULT_NS;
    spec.snapshot_interval = m->snapshot_threshold;
    spec.task_history_limit = MGR_TASK_HISTORY_DEFAULT;
    spec.external_ca_url = m->external_ca_url ? m->external_ca_url : "";
    Swarm__RootCA ca = SWARM__ROOT_CA__INIT;
    ca.ca_cert_pem = (char *)bundle;
    ca.ca_key_pem.data = (uint8_t *)key_pem;
    ca.ca_key_pem.len = key_len;
    ca.digest = digest;
    Swarm__JoinTokens tokens = SWARM__JOIN_TOKENS__INIT;
    tokens.worker = wtok;
    tokens.manager = mtok;
    Swarm__Cluster c = SWARM__CLUSTER__INIT;
    c.id = (char *)st->cluster_id;
    c.meta = &meta;
    c.spec = &spec;
    c.root_ca = &ca;
    c.join_tokens = &tokens;
    if (m->init_autolock && (r = mgr__autolock_edit(&c, true, m->init_unlock_key)) < 0)
        goto out;

    r = proto_pack(&c.base, &cbuf, &clen);
    if (c.unlock_key.data) {
        sw_erase(c.unlock_key.data, c.unlock_key.len);
        free(c.unlock_key.data);
    }
    if (r < 0)
        goto out;
    r = mgr__self_node(m, &node);
    if (r < 0)
        goto out_wipe;
    node->manager_status->leader = true;
    r = proto_pack(&node->base, &nbuf, &nlen);
    swarm__node__free_unpacked(node, NULL);
    if (r < 0)
        goto out_wipe;
    struct store_action a[2] = {
        {.kind = STORE_CREATE,
         .table = STORE_CLUSTER,
         .id = st->cluster_id,
         .value = cbuf,
         .len = clen},
        {.kind = STORE_CREATE, .table = STORE_NODES, .id = st->node_id, .value = nbuf, .len = nlen},
    };
    r = mgr__propose(m, a, 2, cb, NULL);
out_wipe:
    sw_erase(cbuf, clen);
out:
    if (key_pem)
        sw_erase(key_pem, key_len);
    sw_erase(wtok, sizeof(wtok));
    sw_erase(mtok, sizeof(mtok));
    return r;
}

/* init is complete once the cluster is committed and the key files are durable: then
 * node.conf, last. */
static void init_finish(struct mgr *m)
{
    char err[256] = "";
    if (!m->init_committed || m->files_status > 0 || m->stopping)
        return;
    if (m->files_status < 0)
        return fail(m, m->files_status, "%s", m->files_err);
    int r = pki_node_state_save_conf(m->state_dir, &m->st, err, sizeof(err));
    if (r < 0)
        return fail(m, r, "%s", err);
    become_ready(m);
}

static void init_committed(struct mgr *m, int status, void *userdata)
{
    if (status < 0)
        return fail(m, status, "cannot commit the new cluster: %s", strerror(-status));
    log_debug("init: cluster committed");
    m->init_committed = true;
    init_finish(m);
}

static void files_work(uv_work_t *w)
{
    struct mgr *m = w->data;
    int r = pki_node_state_write_keys(m->state_dir, &m->st, m->files_err, sizeof(m->files_err));
    m->files_result = r < 0 ? r : 0;
}

static void files_done(uv_work_t *w, int status)
{
    struct mgr *m = w->data;
    m->files_status = m->files_result;
    if (status < 0 && m->files_status == 0) {
        m->files_status = status;
        snprintf(m->files_err, sizeof(m->files_err), "cannot write the node's key files");
    }
    log_debug("init: key and certificate files written");
    init_finish(m);
    mgr__close_done(m);
}

static void resume_committed(struct mgr *m, int status, void *userdata)
{
    char err[256] = "";
    if (m->serving) {
        /* taking over as leader */
        if (status < 0) {
            log_warn("cannot record this node as the leader: %s", strerror(-status));
            m->taking_over = false;
        } else if (mgr__is_leader(m) && !m->stopping) {
            start_leading(m);
        } else {
            m->taking_over = false;
        }
        return;
    }
    if (status < 0)
        return fail(m, status, "cannot record this node as ready: %s", strerror(-status));
    if (m->conf_changed) {
        int r = pki_node_state_save_conf(m->state_dir, &m->st, err, sizeof(err));
        if (r < 0)
            return fail(m, r, "%s", err);
    }
    become_ready(m);
}

/* On resume: this node is Ready again, at its current address and hostname. */
static int propose_self_update(struct mgr *m)
{
    Swarm__Node *cur = NULL, *self = NULL;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    int r = mgr__get_node(m, m->st.node_id, &cur);
    if (r < 0)
        return r;
    r = mgr__self_node(m, &self);
    if (r < 0) {
        swarm__node__free_unpacked(cur, NULL);
        return r;
    }
    /* keep what the operator decided and the creation time */
    self->availability = cur->availability;
    self->desired_role = cur->desired_role;
    if (cur->meta)
        self->meta->created_at = cur->meta->created_at;
    self->manager_status->leader = true;
    Swarm__Label **labels = self->labels;
    size_t n_labels = self->n_labels;
    self->labels = cur->labels;
    self->n_labels = cur->n_labels;
    r = proto_pack(&self->base, &buf, &len);
    self->labels = labels;
    self->n_labels = n_labels;
    swarm__node__free_unpacked(self, NULL);
    swarm__node__free_unpacked(cur, NULL);
    if (r < 0)
        return r;
    struct store_action a = {
        .kind = STORE_UPDATE, .table = STORE_NODES, .id = m->st.node_id, .value = buf, .len = len};
    return mgr__propose(m, &a, 1, resume_committed, NULL);
}

static void on_leader(struct mgr *m)
{
    int r;
    log_debug("raft leader");
    if (m->init) {
        r = propose_cluster(m, init_committed);
        if (r < 0)
            fail(m, r, "cannot propose the new cluster: %s", strerror(-r));
        return;
    }
    r = mgr__ca_reload(m);
    if (r < 0)
        return fail(m, r, "cannot load the root CA from the store: %s", strerror(-r));
    r = propose_self_update(m);
    if (r < 0)
        fail(m, r, "cannot record this node as ready: %s", strerror(-r));
}

/* A follower is ready once it knows the leader and its replica holds this node. */
/* Ready to serve as a follower: a leader is known, and the store (applied from raft) holds
 * this node and a CA that loads. Else why not, in why (for the message if it never is). */
static bool follower_ready(struct mgr *m, char *why, size_t size)
{
    Swarm__Node *n = NULL;
    int r;
    if (m->init)
        return false;
    if (mgr__leader_raft_id(m) == 0) {
        snprintf(why, size, "no leader heard of");
        return false;
    }
    if ((r = mgr__get_node(m, m->st.node_id, &n)) < 0) {
        snprintf(why, size,
                 "a leader is known (raft member %llu), but this manager's store does not hold "
                 "its own node (%s; applied up to entry %llu)",
                 (unsigned long long)mgr__leader_raft_id(m), strerror(-r),
                 (unsigned long long)m->raft.last_applied);
        return false;
    }
    swarm__node__free_unpacked(n, NULL);
    if ((r = mgr__ca_reload(m)) < 0) {
        snprintf(why, size,
                 "a leader is known, but the CA in this manager's store does not load (%s)",
                 strerror(-r));
        return false;
    }
    return true;
}

static void leader_timer_cb(uv_timer_t *t)
{
    struct mgr *m = t->data;
    if (mgr__is_leader(m)) {
        uv_timer_stop(t);
        on_leader(m);
        return;
    }
    char why[300] = "";
    if (follower_ready(m, why, sizeof(why))) {
        uv_timer_stop(t);
        become_follower(m);
        return;
    }
    if (sw_now_monotonic_ns() - m->leader_wait_start > LEADER_WAIT_MS * SW_NSEC_PER_MSEC) {
        uv_timer_stop(t);
        if (m->raft_peer_untrusted)
            fail(m, -EKEYREJECTED,
                 "no raft leader within %d s: the other managers' certificates do not verify "
                 "against this node's root CA (the swarm's root CA was rotated while it was "
                 "down). To bring node %s back with its ID: on a manager 'swarmctl node demote "
                 "%s' and 'swarmctl node update --allow-rejoin %s', then here 'swarmd join "
                 "--rejoin --state-dir %s WORKER-TOKEN MANAGER' (it comes back as a worker; "
                 "promote it afterwards)",
                 LEADER_WAIT_MS / 1000, m->st.node_id, m->st.node_id, m->st.node_id, m->state_dir);
        else
            fail(m, -ETIMEDOUT,
                 "no raft leader within %d s (this manager was not elected, and none of the "
                 "others is reachable with this node's data): %s",
                 LEADER_WAIT_MS / 1000, why);
    }
}

/* The node is a voter or spare in this manager's raft configuration. */
static bool raft_member(struct mgr *m, const char *node_id)
{
    uint64_t id = mgr__raft_id_from_node_id(node_id);
    for (unsigned i = 0; m->raft_inited && i < m->raft.configuration.n; i++)
        if (m->raft.configuration.servers[i].id == id)
            return true;
    return false;
}

static int authorize_peer(struct net_peer *peer, void *userdata)
{
    struct mgr *m = userdata;
    Swarm__Node *n = NULL;
    /* A certificate of a node the cluster does not know (removed) is refused. */
    int r = mgr__get_node(m, peer->id.node_id, &n);
    if (r < 0) {
        /* ...unless this manager holds no cluster yet: it has just joined, and the other
         * managers (their certificates from this cluster's CA) bring it the data */
        Swarm__Cluster *c = NULL;
        r = mgr__get_cluster(m, &c);
        if (peer->id.role == PKI_ROLE_MANAGER && !m->init && r == -ENOENT)
            return 0;
        bool removed = false;
        for (size_t i = 0; c && i < c->n_removed_nodes && !removed; i++)
            removed = strcmp(c->removed_nodes[i], peer->id.node_id) == 0;
        if (c)
            mgr__cluster_free(c);
        if (removed || mgr__is_leader(m))
            return -EPERM; /* the leader, and any manager for a removed node, knows */
        /* A manager of this cluster's CA this replica does not hold yet, while it hears from
         * no leader or the raft configuration names it: the replica lags (at start raft
         * restores its last snapshot, and the entries after it apply only once a leader
         * names the commit index), and that manager may be the very leader it must hear
         * from to catch up: "try again" would never end. Every call is authorized again, so
         * once the replica holds the node it is judged on what it holds. */
        if (peer->id.role == PKI_ROLE_MANAGER &&
            (mgr__leader_raft_id(m) == 0 || raft_member(m, peer->id.node_id)))
            return 0;
        /* a follower's replica may not have the node yet (it just joined through the
         * leader): try again */
        return -EAGAIN;
    }
    /* a manager certificate of a node that is no manager any more (demoted) acts as a
     * worker's: it may renew into a worker certificate, nothing a manager may do */
    if (peer->id.role == PKI_ROLE_MANAGER && n->desired_role != SWARM__NODE_ROLE__ROLE_MANAGER)
        peer->id.role = PKI_ROLE_WORKER;
    swarm__node__free_unpacked(n, NULL);
    return 0;
}

static int start_server(struct mgr *m, char *errmsg, size_t size)
{
    struct net_server_config sc = {.cluster_id = m->st.cluster_id};
    char path[4096];
    int r;

    r = net_server_create(m->loop, &sc, &m->server);
    if (r < 0) {
        snprintf(errmsg, size, "cannot create the RPC server: %s", strerror(-r));
        return r;
    }
    net_server_set_authorize(m->server, authorize_peer, m);
    if ((r = mgr__control_register(m)) < 0 || (r = mgr__ca_register(m)) < 0 ||
        (r = mgr__dispatcher_register(m)) < 0 || (r = mgr__services_register(m)) < 0 ||
        (r = mgr__nodes_register(m)) < 0 || (r = mgr__transport_register(m)) < 0 ||
        (r = mgr__members_register(m)) < 0 || (r = mgr__autolock_register(m)) < 0 ||
        (r = mgr__datakey_register(m)) < 0 || (r = mgr__rootca_register(m)) < 0) {
        snprintf(errmsg, size, "cannot register RPC methods: %s", strerror(-r));
        return r;
    }
    const char *bundle = m->st.root_ca_pem, *cert = m->st.node_cert_pem;
    r = pki_tls_server_ctx(bundle, strlen(bundle), cert, strlen(cert), m->st.node_key,
                           &m->server_ctx, errmsg, size);
    if (r < 0)
        return r;
    r = pki_tls_client_ctx(bundle, strlen(bundle), cert, strlen(cert), m->st.node_key,
                           &m->client_ctx, errmsg, size);
    if (r < 0)
        return r;
    char err[256] = "";
    r = net_server_listen_tcp(m->server, &m->st.listen_addr, m->server_ctx, &m->bound_addr, err,
                              sizeof(err));
    if (r < 0) {
        char a[80];
        sw_addr_format(&m->st.listen_addr, a, sizeof(a));
        snprintf(errmsg, size, "cannot listen on %s: %s", a, err);
        return r;
    }
    /* an ephemeral port is kept for good: resume listens on the same one */
    if (m->st.listen_addr.port == 0)
        m->st.listen_addr.port = m->bound_addr.port;
    if (m->st.advertise_addr.port == 0)
        m->st.advertise_addr.port = m->bound_addr.port;
    if ((r = sw_path_join(path, sizeof(path), m->state_dir, MGR_SOCKET_FILE)) < 0 ||
        (r = net_server_listen_unix(m->server, path, 0600, err, sizeof(err))) < 0) {
        snprintf(errmsg, size, "cannot listen on %s: %s", path, err[0] ? err : strerror(-r));
        return r;
    }
    return 0;
}

/* One swarmd per state dir: a second one would steal the control socket. */
static int take_lock(struct mgr *m, char *errmsg, size_t size)
{
    char path[4096];
    int r = sw_path_join(path, sizeof(path), m->state_dir, "swarmd.lock");
    if (r < 0)
        return r;
    m->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (m->lock_fd < 0) {
        r = -errno;
        snprintf(errmsg, size, "cannot open %s: %s", path, strerror(errno));
        return r;
    }
    if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = -errno;
        snprintf(errmsg, size,
                 errno == EWOULDBLOCK ? "another swarmd is already running with state directory %s"
                                      : "cannot lock state directory %s",
                 m->state_dir);
        return r;
    }
    return 0;
}

/* The store in dir with every data key keys/dek holds (the store is rebuildable: raft's
 * snapshot and log hold all of it). */
static int open_store(struct mgr *m, const char *dir, store **ret, char *err, size_t size)
{
    bool retired[PKI_DEK_OLD_MAX];
    for (unsigned i = 0; i < PKI_DEK_OLD_MAX; i++)
        retired[i] = i < m->st.n_dek_retired;
    return store_open_keys(dir, m->st.cluster_id, &m->st.dek, m->st.dek_old, retired,
                           SW_MIN(m->st.n_dek_old, (unsigned)PKI_DEK_OLD_MAX),
                           STORE_OPEN_REBUILDABLE, ret, err, size);
}

/* This manager's certificate expired while it was down (longer than the validity): the other
 * nodes refuse it. With --force-new-cluster it re-issues its own from the cluster's CA key,
 * which its store holds; otherwise it says what to do. */
static int check_own_certificate(struct mgr *m, char *errmsg, size_t size)
{
    struct pki_identity id;
    const char *cert = m->st.node_cert_pem;
    if (pki_identity_from_pem(cert, strlen(cert), &id) < 0)
        return 0; /* the load checked it; the handshake says the rest */
    uint64_t now = sw_now_realtime_ns();
    if (id.not_after_ns > now)
        return 0;
    char when[64];
    sw_time_format(id.not_after_ns, when, sizeof(when));
    if (!m->force_new_cluster) {
        snprintf(errmsg, size,
                 "this manager's certificate expired on %s (it was down longer than its "
                 "validity) and the other nodes refuse it: start it with 'swarmd init "
                 "--force-new-cluster --state-dir %s' to re-issue it from the CA key it holds "
                 "(it then leads alone; other managers join it again), or demote and remove it "
                 "from the swarm and join it again with a manager token",
                 when, m->state_dir);
        return -EKEYEXPIRED;
    }
    /* the CA key is in the store: open it for this, sign, and let start go on */
    char dir[4096], err[256] = "";
    store *s = NULL;
    Swarm__Cluster *c = NULL;
    pki_ca *ca = NULL;
    pki_key *key = NULL;
    char *csr = NULL, *newcert = NULL;
    snprintf(dir, sizeof(dir), "%s/%s", m->state_dir, MGR_STORE_DIR);
    int r = open_store(m, dir, &s, err, sizeof(err));
    if (r >= 0) {
        m->store = s;
        r = mgr__get_cluster(m, &c);
        m->store = NULL;
    }
    if (r >= 0)
        r = pki_ca_load(c->root_ca->ca_cert_pem, strlen(c->root_ca->ca_cert_pem),
                        (const char *)c->root_ca->ca_key_pem.data, c->root_ca->ca_key_pem.len, &ca);
    if (r >= 0 && (r = pki_key_generate(&key)) >= 0 && (r = pki_csr_create(key, &csr)) >= 0) {
        struct pki_sign_request req = {.node_id = m->st.node_id,
                                       .cluster_id = m->st.cluster_id,
                                       .role = PKI_ROLE_MANAGER,
                                       .validity_ns = c->spec ? c->spec->cert_expiry_ns : 0};
        r = pki_ca_sign_csr(ca, csr, strlen(csr), &req, &newcert, err, sizeof(err));
    }
    if (r >= 0)
        r = pki_node_state_replace_cert(m->state_dir, newcert, key, err, sizeof(err));
    if (r >= 0) {
        free(m->st.node_cert_pem);
        m->st.node_cert_pem = newcert;
        newcert = NULL;
        pki_key_free(m->st.node_key);
        m->st.node_key = key;
        key = NULL;
        log_warn(
            "this manager's certificate expired on %s: re-issued its own from the "
            "cluster's CA (--force-new-cluster)",
            when);
    } else {
        snprintf(errmsg, size,
                 "this manager's certificate expired on %s and cannot be re-issued here: %s", when,
                 err[0] ? err : strerror(-r));
    }
    free(csr);
    free(newcert);
    pki_key_free(key);
    pki_ca_free(ca);
    if (c)
        mgr__cluster_free(c);
    store_close(s);
    return r;
}

int mgr_start(uv_loop_t *loop, const struct mgr_config *cfg, bool init, mgr_ready_fn ready,
              void *userdata, mgr **ret, char *errmsg, size_t size)
{
    struct mgr *m = calloc(1, sizeof(*m));
    int r;
    if (!m)
        return -ENOMEM;
    log_debug("starting");
    m->loop = loop;
    m->lock_fd = -1;
    m->init = init;
    m->cert_expiry_ns = cfg->cert_expiry_ns;
    m->init_heartbeat_ns = cfg->heartbeat_period_ns;
    m->init_autolock = cfg->autolock;
    m->snapshot_threshold =
        cfg->snapshot_threshold ? cfg->snapshot_threshold : MGR_SNAPSHOT_INTERVAL_DEFAULT;
    m->snapshot_threshold_explicit = cfg->snapshot_threshold != 0;
    m->snapshot_trailing = cfg->snapshot_trailing ? cfg->snapshot_trailing : 500;
    m->force_new_cluster = cfg->force_new_cluster && !init;
    m->state_dir = strdup(cfg->state_dir);
    if (!m->state_dir) {
        free(m);
        return -ENOMEM;
    }
    uv_timer_init(loop, &m->leader_timer);
    m->leader_timer.data = m;
    uv_timer_init(loop, &m->raft_done);
    m->raft_done.data = m;
    uv_timer_init(loop, &m->transport_handle);
    m->transport_handle.data = m;
    uv_timer_init(loop, &m->fatal_timer);
    m->fatal_timer.data = m;
    uv_timer_init(loop, &m->dispatcher_timer);
    m->dispatcher_timer.data = m;
    uv_timer_init(loop, &m->kick_timer);
    m->kick_timer.data = m;
    uv_timer_init(loop, &m->tick_timer);
    m->tick_timer.data = m;
    uv_timer_init(loop, &m->role_timer);
    m->role_timer.data = m;

    enum mgr_state_kind kind;
    char node_id[SW_ID_LEN + 1] = "?", cluster_id[SW_ID_LEN + 1] = "?";
    r = mgr_state_probe(cfg->state_dir, &kind, node_id, cluster_id);
    if (r < 0) {
        snprintf(errmsg, size, "state directory %s: %s", cfg->state_dir, strerror(-r));
        goto fail;
    }
    if (init) {
        if (kind == MGR_STATE_DAMAGED) {
            snprintf(errmsg, size,
                     "%s holds a node whose state (%s/%s and its keys) does not load; repair it "
                     "from a backup, or remove the directory to create a new swarm",
                     cfg->state_dir, cfg->state_dir, MGR_STATE_FILE);
            r = -EEXIST;
            goto fail;
        }
        if (kind == MGR_STATE_NODE) {
            snprintf(errmsg, size,
                     "%s already holds node %s of cluster %s; start it with 'swarmd --state-dir "
                     "%s', or remove the directory to create a new swarm",
                     cfg->state_dir, node_id, cluster_id, cfg->state_dir);
            r = -EEXIST;
            goto fail;
        }
        if (dir_has_entries(cfg->state_dir, MGR_RAFT_DIR) ||
            dir_has_entries(cfg->state_dir, MGR_STORE_DIR)) {
            snprintf(errmsg, size,
                     "%s holds raft or store data from an earlier, incomplete init; remove the "
                     "state directory and run swarmd init again",
                     cfg->state_dir);
            r = -EEXIST;
            goto fail;
        }
        m->st.listen_addr = cfg->listen_addr;
        if (cfg->advertise_addr_set)
            m->st.advertise_addr = cfg->advertise_addr;
        else if ((r = choose_advertise(&cfg->listen_addr, &m->st.advertise_addr, errmsg, size)) < 0)
            goto fail;
        if (m->st.advertise_addr.port == 0 && cfg->listen_addr.port != 0)
            m->st.advertise_addr.port = cfg->listen_addr.port;
        if (cfg->hostname)
            snprintf(m->st.hostname, sizeof(m->st.hostname), "%s", cfg->hostname);
        else if (gethostname(m->st.hostname, sizeof(m->st.hostname) - 1) < 0)
            snprintf(m->st.hostname, sizeof(m->st.hostname), "localhost");
        r = prepare_new(m, cfg, errmsg, size);
        if (r < 0)
            goto fail;
        log_debug("init: identities, keys and root CA ready");
        r = sw_mkdir_p(cfg->state_dir, 0700);
        if (r < 0) {
            snprintf(errmsg, size, "cannot create state directory %s: %s", cfg->state_dir,
                     strerror(-r));
            goto fail;
        }
    } else {
        r = pki_node_state_load(cfg->state_dir, &m->st, errmsg, size);
        if (r < 0)
            goto fail;
        if (m->st.role != PKI_ROLE_MANAGER) {
            snprintf(errmsg, size, "%s holds a worker node; workers arrive with the cluster issue",
                     cfg->state_dir);
            r = -EOPNOTSUPP;
            goto fail;
        }
        if (cfg->listen_addr_set)
            m->st.listen_addr = cfg->listen_addr;
        if (cfg->advertise_addr_set)
            m->st.advertise_addr = cfg->advertise_addr;
        if (cfg->hostname)
            snprintf(m->st.hostname, sizeof(m->st.hostname), "%s", cfg->hostname);
        m->conf_changed = cfg->listen_addr_set || cfg->advertise_addr_set || cfg->hostname;
    }

    r = take_lock(m, errmsg, size);
    if (r < 0)
        goto fail;
    if (!init && (r = check_own_certificate(m, errmsg, size)) < 0)
        goto fail;
    r = start_server(m, errmsg, size);
    if (r < 0)
        goto fail;

    char dir[4096], err[256] = "";
    snprintf(dir, sizeof(dir), "%s/%s", cfg->state_dir, MGR_STORE_DIR);
    log_debug("listening");
    if (init) {
        /* the fsync-heavy key files are written on the thread pool while raft starts */
        m->files_status = 1;
        m->files_work.data = m;
        m->pending_closes++; /* released in files_done */
        r = uv_queue_work(loop, &m->files_work, files_work, files_done);
        if (r < 0) {
            m->pending_closes--;
            snprintf(errmsg, size, "cannot queue work: %s", uv_strerror(r));
            goto fail;
        }
    }
    {
        r = open_store(m, dir, &m->store, err, sizeof(err));
        if (r >= 0 && store_was_reset(m->store))
            log_warn(
                "the store in %s was open when the machine went down: emptied, it is "
                "rebuilt from the raft snapshot and log",
                dir);
    }
    if (r < 0) {
        snprintf(errmsg, size, "cannot open the store in %s: %s", dir, err);
        goto fail;
    }
    r = mgr__datakey_load(m);
    if (r >= 0)
        r = mgr__autolock_start(m);
    if (r >= 0)
        r = mgr__datakey_start(m);
    if (r < 0) {
        snprintf(errmsg, size, "cannot watch the store: %s", strerror(-r));
        goto fail;
    }
    log_debug("store open");
    r = mgr__raft_start(m, init, errmsg, size);
    if (r < 0)
        goto fail;
    log_debug("raft started");

    m->ready = ready;
    m->ready_userdata = userdata;
    m->leader_wait_start = sw_now_monotonic_ns();
    uv_timer_start(&m->leader_timer, leader_timer_cb, 0, 1);
    *ret = m;
    return 0;

fail:
    /* Tear down synchronously enough for the caller: it runs the loop to finish closes. */
    mgr_stop(m, NULL, NULL);
    return r;
}

int mgr_set_certificate(mgr *m, const char *cert_pem, const pki_key *key, char *errmsg, size_t size)
{
    SSL_CTX *ctx = NULL;
    pki_key *k = NULL;
    char *pem = strdup(cert_pem);
    /* the agent may have written a new root bundle with it (a root rotation) */
    char path[4096], *root = NULL;
    if (sw_path_join(path, sizeof(path), m->state_dir, PKI_NODE_ROOT_CA_FILE) >= 0 &&
        sw_read_file(path, 1024 * 1024, &root, NULL) >= 0 && root[0] &&
        strcmp(root, m->st.root_ca_pem) != 0) {
        free(m->st.root_ca_pem);
        m->st.root_ca_pem = root;
        root = NULL;
    }
    free(root);
    const char *bundle = m->st.root_ca_pem;
    int r = pem ? pki_key_dup(key, &k) : -ENOMEM;
    if (r < 0) {
        snprintf(errmsg, size, "out of memory");
        goto fail;
    }
    SSL_CTX *cctx = NULL;
    r = pki_tls_server_ctx(bundle, strlen(bundle), pem, strlen(pem), k, &ctx, errmsg, size);
    if (r >= 0)
        r = pki_tls_client_ctx(bundle, strlen(bundle), pem, strlen(pem), k, &cctx, errmsg, size);
    if (r < 0) {
        if (ctx)
            pki_tls_ctx_free(ctx);
        goto fail;
    }
    if (m->client_ctx)
        pki_tls_ctx_free(m->client_ctx);
    m->client_ctx = cctx;
    if (m->server)
        net_server_set_tls_ctx(m->server, ctx);
    if (m->server_ctx)
        pki_tls_ctx_free(m->server_ctx);
    m->server_ctx = ctx;
    free(m->st.node_cert_pem);
    m->st.node_cert_pem = pem;
    pki_key_free(m->st.node_key);
    m->st.node_key = k;
    return 0;
fail:
    free(pem);
    pki_key_free(k);
    return r;
}

static void free_mgr(struct mgr *m)
{
    void (*cb)(void *) = m->stop_cb;
    void *ud = m->stop_userdata;
    store_close(m->store);
    pki_ca_free(m->ca);
    if (m->server_ctx)
        pki_tls_ctx_free(m->server_ctx);
    if (m->client_ctx)
        pki_tls_ctx_free(m->client_ctx);
    pki_node_state_finish(&m->st);
    mgr__forward_free(m);
    mgr__names_clear(m);
    if (m->lock_fd >= 0)
        close(m->lock_fd);
    free(m->state_dir);
    free(m->external_ca_url);
    free(m->external_ca_chain);
    m->state_dir = NULL;
    if (!mgr__raft_keep(m))
        free(m);
    if (cb)
        cb(ud);
}

void mgr__close_done(struct mgr *m)
{
    if (m->pending_closes > 0)
        m->pending_closes--;
    if (m->pending_closes == 0 && m->stopping)
        free_mgr(m);
}

static void server_closed(void *userdata)
{
    mgr__close_done(userdata);
}

static void timer_closed(uv_handle_t *h)
{
    mgr__close_done(h->data);
}

void mgr_stop(mgr *m, void (*cb)(void *userdata), void *userdata)
{
    if (!m || m->stopping)
        return;
    m->stopping = true;
    m->serving = false;
    m->ready = NULL;
    m->stop_cb = cb;
    m->stop_userdata = userdata;
    /* queued cluster edits will not run: their callers get an answer */
    while (m->cluster_ops_head) {
        struct mgr_cluster_op *op = m->cluster_ops_head;
        m->cluster_ops_head = op->next;
        if (!m->cluster_ops_head)
            m->cluster_ops_tail = NULL;
        if (op->cb)
            op->cb(m, -ECANCELED, op->userdata);
        free(op);
    }
    m->pending_closes++; /* held until every close below has been started */
    mgr__orchestrator_stop(m);
    mgr__dispatcher_stop(m);
    mgr__forward_stop(m);
    mgr__autolock_stop(m);
    mgr__datakey_stop(m);
    m->pending_closes += 6;
    uv_close((uv_handle_t *)&m->kick_timer, timer_closed);
    uv_close((uv_handle_t *)&m->tick_timer, timer_closed);
    uv_close((uv_handle_t *)&m->role_timer, timer_closed);
    uv_close((uv_handle_t *)&m->leader_timer, timer_closed);
    uv_close((uv_handle_t *)&m->fatal_timer, timer_closed);
    uv_close((uv_handle_t *)&m->dispatcher_timer, timer_closed);
    if (m->server) {
        m->pending_closes++;
        net_server_close(m->server, server_closed, m);
        m->server = NULL;
    }
    mgr__raft_close(m);
    mgr__close_done(m);
}

const char *mgr_node_id(const mgr *m)
{
    return m->st.node_id;
}

const char *mgr_cluster_id(const mgr *m)
{
    return m->st.cluster_id;
}

void mgr_listen_addr(const mgr *m, char *buf, unsigned size)
{
    sw_addr_format(&m->bound_addr, buf, size);
}

void mgr_advertise_addr(const mgr *m, char *buf, unsigned size)
{
    sw_addr_format(&m->st.advertise_addr, buf, size);
}

int mgr_join_token(mgr *m, int role, char *buf, unsigned size)
{
    Swarm__Cluster *c;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    snprintf(buf, size, "%s", role ? c->join_tokens->manager : c->join_tokens->worker);
    mgr__cluster_free(c);
    return 0;
}

int mgr_init_unlock_key(mgr *m, char *buf, size_t size)
{
    if (!m->init_unlock_key[0])
        return -ENOENT;
    int n = snprintf(buf, size, "%s", m->init_unlock_key);
    sw_erase(m->init_unlock_key, sizeof(m->init_unlock_key));
    return n >= 0 && (size_t)n < size ? 0 : -ENOSPC;
}
