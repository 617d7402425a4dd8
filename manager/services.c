/* The control API for services, tasks, secrets and node updates. Every change is a raft
 * proposal answered after it commits; the orchestrator and scheduler react to the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

#define SECRET_MAX (500 * 1024)
#define REPLICAS_MAX 100000

static void service_names(const ProtobufCMessage *msg, const char **id, const char **name)
{
    const Swarm__Service *s = (const Swarm__Service *)msg;
    *id = s->id;
    *name = s->name;
}

static void secret_names(const ProtobufCMessage *msg, const char **id, const char **name)
{
    const Swarm__Secret *s = (const Swarm__Secret *)msg;
    *id = s->id;
    *name = s->name;
}

static void node_names(const ProtobufCMessage *msg, const char **id, const char **name)
{
    const Swarm__Node *n = (const Swarm__Node *)msg;
    *id = n->id;
    *name = n->hostname;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* node.(id|hostname|role|labels.K)(==|!=)VALUE */
bool mgr__valid_constraint(const char *c)
{
    const char *op = strstr(c, "==");
    if (!op)
        op = strstr(c, "!=");
    if (!op || strspn(op + 2, " ") == strlen(op + 2) || strlen(op + 2) >= 1024)
        return false; /* a value is needed */
    while (*c == ' ')
        c++;
    size_t klen = (size_t)(op - c);
    while (klen > 0 && c[klen - 1] == ' ')
        klen--;
    if (klen == 7 && strncmp(c, "node.id", 7) == 0)
        return true;
    if (klen == 13 && strncmp(c, "node.hostname", 13) == 0)
        return true;
    if (klen == 9 && strncmp(c, "node.role", 9) == 0)
        return true;
    return klen > 12 && strncmp(c, "node.labels.", 12) == 0;
}

/* Check a task spec and resolve its secrets by name. */
static int check_task_spec(struct mgr *m, Swarm__TaskSpec *t, char *err, size_t size)
{
    if (!t || t->n_command == 0 || t->command[0][0] == '\0') {
        snprintf(err, size, "a command is required");
        return -EINVAL;
    }
    if (t->limit_memory < 0 || t->limit_nano_cpus < 0 || t->limit_pids < 0 ||
        t->reserve_memory < 0 || t->reserve_nano_cpus < 0) {
        snprintf(err, size, "limits and reservations must not be negative");
        return -EINVAL;
    }
    if (t->restart_condition[0] && strcmp(t->restart_condition, "any") != 0 &&
        strcmp(t->restart_condition, "on-failure") != 0 &&
        strcmp(t->restart_condition, "none") != 0) {
        snprintf(err, size, "restart condition must be any, on-failure or none");
        return -EINVAL;
    }
    if (t->restart_max_attempts > MGR_RESTART_ATTEMPTS_MAX) {
        /* the runs counted are kept in the task history: bound it */
        snprintf(err, size, "restart max attempts must be at most %d", MGR_RESTART_ATTEMPTS_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < t->n_constraints; i++)
        if (!mgr__valid_constraint(t->constraints[i])) {
            snprintf(err, size,
                     "invalid constraint '%.64s': node.id|node.hostname|node.role|"
                     "node.labels.KEY, == or !=, then a value",
                     t->constraints[i]);
            return -EINVAL;
        }
    if (t->n_secrets == 0)
        return 0;
    struct mgr_objs secrets;
    int r = mgr__list(m, STORE_SECRETS, &swarm__secret__descriptor, &secrets);
    if (r < 0) {
        snprintf(err, size, "cannot read secrets: %s", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < t->n_secrets && r >= 0; i++) {
        Swarm__SecretRef *ref = t->secrets[i];
        const char *want = ref->secret_name[0] ? ref->secret_name : ref->secret_id;
        size_t j;
        for (j = 0; j < secrets.n; j++) {
            const Swarm__Secret *s = (const Swarm__Secret *)secrets.v[j];
            if (strcmp(s->name, want) == 0 || strcmp(s->id, want) == 0)
                break;
        }
        if (j == secrets.n) {
            snprintf(err, size, "secret not found: %.64s", want);
            r = -ENOENT;
            break;
        }
        const Swarm__Secret *s = (const Swarm__Secret *)secrets.v[j];
        char *id = strdup(s->id), *name = strdup(s->name);
        char *target = strdup(ref->target[0] ? ref->target : s->name);
        if (!id || !name || !target) {
            free(id);
            free(name);
            free(target);
            r = -ENOMEM;
            break;
        }
        if (strchr(target, '/') || !strcmp(target, ".") || !strcmp(target, "..")) {
            snprintf(err, size, "secret target '%.64s' must be a file name", target);
            free(id);
            free(name);
            free(target);
            r = -EINVAL;
            break;
        }
        if (ref->secret_id != protobuf_c_empty_string)
            free(ref->secret_id);
        if (ref->secret_name != protobuf_c_empty_string)
            free(ref->secret_name);
        if (ref->target != protobuf_c_empty_string)
            free(ref->target);
        ref->secret_id = id;
        ref->secret_name = name;
        ref->target = target;
        if (ref->mode == 0)
            ref->mode = 0444;
        if (ref->mode > 07777) {
            snprintf(err, size, "secret %s: mode %o is not a file mode", name, ref->mode);
            r = -EINVAL;
        }
    }
    mgr__objs_free(&secrets);
    return r;
}

/* The answer for a service: it, and how many of its tasks run. */
static int service_response(struct mgr *m, Swarm__Service *svc, uint8_t **buf, size_t *len)
{
    struct mgr_objs tasks;
    uint64_t running = 0;
    int r = mgr__list_index(m, STORE_TASKS_BY_SERVICE, svc->id, &tasks);
    if (r < 0)
        return r;
    for (size_t i = 0; i < tasks.n; i++) {
        const Swarm__Task *t = (const Swarm__Task *)tasks.v[i];
        if (t->state == SWARM__TASK_STATE__TASK_RUNNING)
            running++;
    }
    uint64_t desired = svc->replicas;
    if (svc->global) {
        desired = 0;
        for (size_t i = 0; i < tasks.n; i++) {
            const Swarm__Task *t = (const Swarm__Task *)tasks.v[i];
            if (t->desired_state <= SWARM__TASK_STATE__TASK_RUNNING)
                desired++;
        }
    }
    mgr__objs_free(&tasks);
    Swarm__ServiceResponse resp = SWARM__SERVICE_RESPONSE__INIT;
    resp.service = svc;
    resp.running = running;
    resp.desired = desired;
    return proto_pack(&resp.base, buf, len);
}

/* ------------------------------------------------------------------ create */

struct pending {
    net_call *call;
    ProtobufCMessage *obj; /* what to answer with after the commit */
    bool secret;
    enum store_table table;
    char *reserved; /* a create's name, held until the commit (released if it fails) */
};

static void answer_committed(struct mgr *m, int status, void *userdata)
{
    struct pending *p = userdata;
    if (status < 0 && p->reserved)
        mgr__name_release(m, p->table, p->reserved);
    free(p->reserved);
    if (status < 0) {
        char err[160];
        snprintf(err, sizeof(err), "%s",
                 status == -EEXIST ? "it already exists" : mgr__strerror(status));
        net_call_reply(p->call, status, err, NULL, 0);
    } else if (!p->obj) {
        net_call_reply(p->call, 0, NULL, NULL, 0);
    } else if (p->secret) {
        Swarm__Secret *s = (Swarm__Secret *)p->obj;
        sw_erase(s->data.data, s->data.len);
        s->data.len = 0;
        Swarm__SecretResponse resp = SWARM__SECRET_RESPONSE__INIT;
        resp.secret = s;
        mgr__reply_msg(p->call, &resp.base);
    } else {
        uint8_t *buf;
        size_t len;
        int r = service_response(m, (Swarm__Service *)p->obj, &buf, &len);
        if (r < 0) {
            net_call_reply(p->call, r, "cannot read the service back", NULL, 0);
        } else {
            net_call_reply(p->call, 0, NULL, buf, len);
            free(buf);
        }
    }
    if (p->obj)
        protobuf_c_message_free_unpacked(p->obj, NULL);
    free(p);
}

/* Propose one action and answer the call with obj (owned) once committed. */
static void propose_and_answer(struct mgr *m, net_call *call, enum store_action_kind kind,
                               enum store_table table, const char *id, ProtobufCMessage *obj,
                               bool secret, const char *reserved)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = 0;
    if (obj && kind != STORE_DELETE)
        r = proto_pack(obj, &buf, &len);
    struct pending *p = r >= 0 ? calloc(1, sizeof(*p)) : NULL;
    if (p && reserved && !(p->reserved = strdup(reserved))) {
        free(p);
        p = NULL;
    }
    if (!p) {
        if (reserved)
            mgr__name_release(m, table, reserved);
        if (obj)
            protobuf_c_message_free_unpacked(obj, NULL);
        free(buf);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    p->table = table;
    p->call = call;
    p->obj = kind == STORE_DELETE ? NULL : obj;
    p->secret = secret;
    struct store_action a = {.kind = kind, .table = table, .id = id, .value = buf, .len = len};
    r = mgr__propose(m, &a, 1, answer_committed, p);
    if (buf) {
        sw_erase(buf, len);
        free(buf);
    }
    if (kind == STORE_DELETE && obj)
        protobuf_c_message_free_unpacked(obj, NULL);
    if (r < 0) {
        if (p->reserved)
            mgr__name_release(m, table, p->reserved);
        free(p->reserved);
        if (p->obj)
            protobuf_c_message_free_unpacked(p->obj, NULL);
        free(p);
        mgr__reply_errno(call, r, "cannot propose the change");
    }
}

static Swarm__Meta *new_meta(void)
{
    Swarm__Meta *meta = calloc(1, sizeof(*meta));
    if (meta) {
        swarm__meta__init(meta);
        meta->created_at = meta->updated_at = sw_now_realtime_ns();
    }
    return meta;
}

static void h_create_service(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256] = "";
    if (!mgr__serving(m, call))
        return;
    Swarm__CreateServiceRequest *req = (Swarm__CreateServiceRequest *)mgr__request(
        call, &swarm__create_service_request__descriptor, payload, len);
    if (!req)
        return;
    int r = 0;
    if (!valid_name(req->name)) {
        snprintf(err, sizeof(err), "invalid service name '%.64s': letters, digits, '_', '.', '-'",
                 req->name);
        r = -EINVAL;
    } else if (!req->global && req->replicas > REPLICAS_MAX) {
        snprintf(err, sizeof(err), "at most %d replicas", REPLICAS_MAX);
        r = -EINVAL;
    }
    if (r >= 0)
        r = check_task_spec(m, req->task, err, sizeof(err));
    char name[256] = "";
    if (r >= 0) {
        r = mgr__name_reserve(m, STORE_SERVICES, req->name);
        if (r == -EEXIST)
            snprintf(err, sizeof(err), "a service named %s already exists", req->name);
        else if (r >= 0)
            snprintf(name, sizeof(name), "%s", req->name);
    }
    Swarm__Service *svc = NULL;
    if (r >= 0) {
        svc = calloc(1, sizeof(*svc));
        char id[SW_ID_LEN + 1];
        if (!svc || sw_id_generate(id) < 0) {
            r = -ENOMEM;
        } else {
            swarm__service__init(svc);
            svc->id = strdup(id);
            svc->meta = new_meta();
            svc->name = req->name;
            req->name = NULL;
            svc->labels = req->labels;
            svc->n_labels = req->n_labels;
            req->labels = NULL;
            req->n_labels = 0;
            svc->global = req->global;
            svc->replicas = req->global ? 0 : req->replicas;
            svc->task = req->task;
            req->task = NULL;
            svc->spec_version = 1;
            if (!svc->id || !svc->meta)
                r = -ENOMEM;
        }
    }
    swarm__create_service_request__free_unpacked(req, NULL);
    if (r < 0) {
        if (name[0])
            mgr__name_release(m, STORE_SERVICES, name);
        if (svc)
            swarm__service__free_unpacked(svc, NULL);
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        return net_call_reply(call, r, err, NULL, 0);
    }
    log_info("service %s (%s) created", svc->name, svc->id);
    propose_and_answer(m, call, STORE_CREATE, STORE_SERVICES, svc->id, &svc->base, false, name);
}

/* ------------------------------------------------------------------ read */

static int find_service(struct mgr *m, const char *ref, Swarm__Service **ret, char *err,
                        size_t size)
{
    struct mgr_objs o;
    int r = mgr__list(m, STORE_SERVICES, &swarm__service__descriptor, &o);
    if (r < 0) {
        snprintf(err, size, "cannot read services: %s", strerror(-r));
        return r;
    }
    ssize_t i = mgr__objs_find(&o, ref, service_names, err, size, "service");
    if (i >= 0)
        *ret = (Swarm__Service *)mgr__objs_take(&o, (size_t)i);
    mgr__objs_free(&o);
    return i < 0 ? (int)i : 0;
}

static void h_get_service(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    Swarm__Service *svc = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__GetServiceRequest *req = (Swarm__GetServiceRequest *)mgr__request(
        call, &swarm__get_service_request__descriptor, payload, len);
    if (!req)
        return;
    int r = find_service(m, req->id, &svc, err, sizeof(err));
    swarm__get_service_request__free_unpacked(req, NULL);
    if (r < 0)
        return net_call_reply(call, r, err, NULL, 0);
    uint8_t *buf;
    size_t n;
    r = service_response(m, svc, &buf, &n);
    swarm__service__free_unpacked(svc, NULL);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot read the service");
    net_call_reply(call, 0, NULL, buf, n);
    free(buf);
}

static void h_list_services(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    struct mgr_objs o;
    if (!mgr__serving(m, call))
        return;
    int r = mgr__list(m, STORE_SERVICES, &swarm__service__descriptor, &o);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot list services");
    Swarm__ListServicesResponse resp = SWARM__LIST_SERVICES_RESPONSE__INIT;
    Swarm__ServiceResponse *items = calloc(o.n ? o.n : 1, sizeof(*items));
    Swarm__ServiceResponse **ptrs = calloc(o.n ? o.n : 1, sizeof(*ptrs));
    if (!items || !ptrs) {
        free(items);
        free(ptrs);
        mgr__objs_free(&o);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    for (size_t i = 0; i < o.n; i++) {
        uint8_t *buf;
        size_t n;
        Swarm__ServiceResponse *one = NULL;
        if (service_response(m, (Swarm__Service *)o.v[i], &buf, &n) >= 0) {
            one = swarm__service_response__unpack(NULL, n, buf);
            free(buf);
        }
        swarm__service_response__init(&items[i]);
        if (one) {
            items[i].running = one->running;
            items[i].desired = one->desired;
            swarm__service_response__free_unpacked(one, NULL);
        }
        items[i].service = (Swarm__Service *)o.v[i];
        ptrs[i] = &items[i];
    }
    resp.services = ptrs;
    resp.n_services = o.n;
    mgr__reply_msg(call, &resp.base);
    free(items);
    free(ptrs);
    mgr__objs_free(&o);
}

static void h_list_tasks(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    struct mgr_objs o = {0};
    if (!mgr__serving(m, call))
        return;
    Swarm__ListTasksRequest *req = (Swarm__ListTasksRequest *)mgr__request(
        call, &swarm__list_tasks_request__descriptor, payload, len);
    if (!req)
        return;
    int r;
    if (req->service[0]) {
        Swarm__Service *svc = NULL;
        r = find_service(m, req->service, &svc, err, sizeof(err));
        if (r >= 0) {
            r = mgr__list_index(m, STORE_TASKS_BY_SERVICE, svc->id, &o);
            swarm__service__free_unpacked(svc, NULL);
        }
    } else if (req->node[0]) {
        r = mgr__list_index(m, STORE_TASKS_BY_NODE, req->node, &o);
    } else {
        r = mgr__list(m, STORE_TASKS, &swarm__task__descriptor, &o);
    }
    swarm__list_tasks_request__free_unpacked(req, NULL);
    if (r < 0) {
        if (r != -ENOENT && r != -EINVAL)
            snprintf(err, sizeof(err), "cannot list tasks: %s", strerror(-r));
        return net_call_reply(call, r, err, NULL, 0);
    }
    Swarm__ListTasksResponse resp = SWARM__LIST_TASKS_RESPONSE__INIT;
    resp.tasks = (Swarm__Task **)o.v;
    resp.n_tasks = o.n;
    mgr__reply_msg(call, &resp.base);
    mgr__objs_free(&o);
}

/* ------------------------------------------------------------------ update / remove */

struct service_edit {
    net_call *call;
    Swarm__UpdateServiceRequest *req;
};

static void h_update_service(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256] = "";
    Swarm__Service *svc = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__UpdateServiceRequest *req = (Swarm__UpdateServiceRequest *)mgr__request(
        call, &swarm__update_service_request__descriptor, payload, len);
    if (!req)
        return;
    int r = find_service(m, req->id, &svc, err, sizeof(err));
    if (r >= 0 && req->set_replicas) {
        if (svc->global) {
            snprintf(err, sizeof(err), "service %s is global: it has no replica count", svc->name);
            r = -EINVAL;
        } else if (req->replicas > REPLICAS_MAX) {
            snprintf(err, sizeof(err), "at most %d replicas", REPLICAS_MAX);
            r = -EINVAL;
        } else {
            svc->replicas = req->replicas;
        }
    }
    if (r >= 0 && req->task) {
        r = check_task_spec(m, req->task, err, sizeof(err));
        if (r >= 0) {
            swarm__task_spec__free_unpacked(svc->task, NULL);
            svc->task = req->task;
            req->task = NULL;
            svc->spec_version++;
        }
    }
    swarm__update_service_request__free_unpacked(req, NULL);
    if (r < 0) {
        if (svc)
            swarm__service__free_unpacked(svc, NULL);
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        return net_call_reply(call, r, err, NULL, 0);
    }
    svc->meta->updated_at = sw_now_realtime_ns();
    log_info("service %s updated (replicas %llu, spec version %llu)", svc->name,
             (unsigned long long)svc->replicas, (unsigned long long)svc->spec_version);
    propose_and_answer(m, call, STORE_UPDATE, STORE_SERVICES, svc->id, &svc->base, false, NULL);
}

static void h_remove_service(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    Swarm__Service *svc = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__GetServiceRequest *req = (Swarm__GetServiceRequest *)mgr__request(
        call, &swarm__get_service_request__descriptor, payload, len);
    if (!req)
        return;
    int r = find_service(m, req->id, &svc, err, sizeof(err));
    swarm__get_service_request__free_unpacked(req, NULL);
    if (r < 0)
        return net_call_reply(call, r, err, NULL, 0);
    /* the orchestrator shuts its tasks down and removes them once the service is gone */
    log_info("service %s (%s) removed", svc->name, svc->id);
    char id[SW_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", svc->id);
    propose_and_answer(m, call, STORE_DELETE, STORE_SERVICES, id, &svc->base, false, NULL);
}

/* ------------------------------------------------------------------ secrets */

/* ------------------------------------------------------------------ labels */

/* Remove then add (replacing a key that exists); the added labels move into *labels (their
 * slots in add are set to NULL). */
static int labels_edit(Swarm__Label ***labels, size_t *n, Swarm__Label **add, size_t n_add,
                       char **rm, size_t n_rm)
{
    for (size_t i = 0; i < n_rm; i++)
        for (size_t j = 0; j < *n; j++)
            if (strcmp((*labels)[j]->key, rm[i]) == 0) {
                swarm__label__free_unpacked((*labels)[j], NULL);
                (*labels)[j] = (*labels)[--*n];
                break;
            }
    for (size_t i = 0; i < n_add; i++) {
        size_t j;
        for (j = 0; j < *n; j++)
            if (strcmp((*labels)[j]->key, add[i]->key) == 0)
                break;
        if (j == *n) {
            Swarm__Label **v = realloc(*labels, (*n + 1) * sizeof(*v));
            if (!v)
                return -ENOMEM;
            *labels = v;
            (*labels)[(*n)++] = add[i];
        } else {
            swarm__label__free_unpacked((*labels)[j], NULL);
            (*labels)[j] = add[i];
        }
        add[i] = NULL;
    }
    return 0;
}

/* A label edit's keys and values: present and bounded. */
static bool valid_label_edit(Swarm__Label **add, size_t n_add, char **rm, size_t n_rm)
{
    for (size_t i = 0; i < n_add; i++)
        if (!add[i]->key[0] || strlen(add[i]->key) > 128 || strlen(add[i]->value) > 1024)
            return false;
    for (size_t i = 0; i < n_rm; i++)
        if (!rm[i][0] || strlen(rm[i]) > 128)
            return false;
    return true;
}

/* ------------------------------------------------------------------ secrets */

static int find_secret(struct mgr *m, const char *ref, Swarm__Secret **ret, char *err, size_t size)
{
    struct mgr_objs o;
    int r = mgr__list(m, STORE_SECRETS, &swarm__secret__descriptor, &o);
    if (r < 0) {
        snprintf(err, size, "cannot read secrets: %s", strerror(-r));
        return r;
    }
    ssize_t i = mgr__objs_find(&o, ref, secret_names, err, size, "secret");
    if (i >= 0)
        *ret = (Swarm__Secret *)mgr__objs_take(&o, (size_t)i);
    for (size_t j = 0; j < o.n; j++)
        if (o.v[j]) {
            Swarm__Secret *s = (Swarm__Secret *)o.v[j];
            sw_erase(s->data.data, s->data.len);
        }
    mgr__objs_free(&o);
    return i < 0 ? (int)i : 0;
}

static void h_create_secret(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256] = "";
    if (!mgr__serving(m, call))
        return;
    Swarm__CreateSecretRequest *req = (Swarm__CreateSecretRequest *)mgr__request(
        call, &swarm__create_secret_request__descriptor, payload, len);
    if (!req)
        return;
    int r = 0;
    if (!valid_name(req->name)) {
        snprintf(err, sizeof(err), "invalid secret name '%.64s': letters, digits, '_', '.', '-'",
                 req->name);
        r = -EINVAL;
    } else if (req->data.len > SECRET_MAX) {
        snprintf(err, sizeof(err), "a secret holds at most 500 KiB");
        r = -EFBIG;
    } else if ((r = mgr__name_reserve(m, STORE_SECRETS, req->name)) == -EEXIST) {
        snprintf(err, sizeof(err), "a secret named %s already exists", req->name);
    }
    char name[256] = "";
    if (r >= 0)
        snprintf(name, sizeof(name), "%s", req->name);
    Swarm__Secret *s = NULL;
    char id[SW_ID_LEN + 1];
    if (r >= 0 && (s = calloc(1, sizeof(*s))) && sw_id_generate(id) >= 0) {
        swarm__secret__init(s);
        s->id = strdup(id);
        s->meta = new_meta();
        s->name = req->name;
        req->name = NULL;
        s->labels = req->labels;
        s->n_labels = req->n_labels;
        req->labels = NULL;
        req->n_labels = 0;
        s->data = req->data;
        req->data.data = NULL;
        req->data.len = 0;
        char digest[65];
        pki_sha256_hex(s->data.data, s->data.len, digest);
        s->digest = strdup(digest);
        if (!s->id || !s->meta || !s->digest)
            r = -ENOMEM;
    } else if (r >= 0) {
        r = -ENOMEM;
    }
    if (req->data.data)
        sw_erase(req->data.data, req->data.len);
    swarm__create_secret_request__free_unpacked(req, NULL);
    if (r < 0) {
        if (name[0])
            mgr__name_release(m, STORE_SECRETS, name);
        if (s) {
            sw_erase(s->data.data, s->data.len);
            swarm__secret__free_unpacked(s, NULL);
        }
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        return net_call_reply(call, r, err, NULL, 0);
    }
    log_info("secret %s (%s) created", s->name, s->id);
    propose_and_answer(m, call, STORE_CREATE, STORE_SECRETS, s->id, &s->base, true, name);
}

static void h_get_secret(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    Swarm__Secret *s = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__GetSecretRequest *req = (Swarm__GetSecretRequest *)mgr__request(
        call, &swarm__get_secret_request__descriptor, payload, len);
    if (!req)
        return;
    int r = find_secret(m, req->id, &s, err, sizeof(err));
    swarm__get_secret_request__free_unpacked(req, NULL);
    if (r < 0)
        return net_call_reply(call, r, err, NULL, 0);
    sw_erase(s->data.data, s->data.len);
    s->data.len = 0;
    Swarm__SecretResponse resp = SWARM__SECRET_RESPONSE__INIT;
    resp.secret = s;
    mgr__reply_msg(call, &resp.base);
    swarm__secret__free_unpacked(s, NULL);
}

static void h_list_secrets(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    struct mgr_objs o;
    if (!mgr__serving(m, call))
        return;
    int r = mgr__list(m, STORE_SECRETS, &swarm__secret__descriptor, &o);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot list secrets");
    for (size_t i = 0; i < o.n; i++) {
        Swarm__Secret *s = (Swarm__Secret *)o.v[i];
        sw_erase(s->data.data, s->data.len);
        s->data.len = 0;
    }
    Swarm__ListSecretsResponse resp = SWARM__LIST_SECRETS_RESPONSE__INIT;
    resp.secrets = (Swarm__Secret **)o.v;
    resp.n_secrets = o.n;
    mgr__reply_msg(call, &resp.base);
    mgr__objs_free(&o);
}

struct secret_edit {
    net_call *call;
    Swarm__UpdateSecretRequest *req;
    char id[SW_ID_LEN + 1];
};

/* In the write queue's turn: the secret as committed, its labels edited. */
static int edit_secret(struct mgr *m, struct mgr_batch *b, void *userdata)
{
    struct secret_edit *e = userdata;
    Swarm__Secret *s = NULL;
    char err[256];
    int r = find_secret(m, e->id, &s, err, sizeof(err));
    if (r < 0)
        return r == -ENOENT ? -ENOENT : r;
    r = labels_edit(&s->labels, &s->n_labels, e->req->label_add, e->req->n_label_add,
                    e->req->label_rm, e->req->n_label_rm);
    if (r >= 0 && s->meta)
        s->meta->updated_at = sw_now_realtime_ns();
    if (r >= 0)
        r = mgr__batch_add(b, STORE_PUT, STORE_SECRETS, s->id, &s->base);
    sw_erase(s->data.data, s->data.len);
    swarm__secret__free_unpacked(s, NULL);
    return r;
}

static void secret_edited(struct mgr *m, int status, void *userdata)
{
    struct secret_edit *e = userdata;
    Swarm__Secret *s = NULL;
    char err[256];
    if (status == -ENOENT) {
        net_call_reply(e->call, -ENOENT, "the secret was removed meanwhile", NULL, 0);
    } else if (status < 0) {
        mgr__reply_errno(e->call, status, "cannot update the secret");
    } else if (find_secret(m, e->id, &s, err, sizeof(err)) >= 0) {
        sw_erase(s->data.data, s->data.len);
        s->data.len = 0;
        Swarm__SecretResponse resp = SWARM__SECRET_RESPONSE__INIT;
        resp.secret = s;
        mgr__reply_msg(e->call, &resp.base);
        swarm__secret__free_unpacked(s, NULL);
    } else {
        net_call_reply(e->call, 0, NULL, NULL, 0);
    }
    swarm__update_secret_request__free_unpacked(e->req, NULL);
    free(e);
}

/* Labels may change; the data never does (a new secret is a new name, as in Docker). */
static void h_update_secret(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    Swarm__Secret *s = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__UpdateSecretRequest *req = (Swarm__UpdateSecretRequest *)mgr__request(
        call, &swarm__update_secret_request__descriptor, payload, len);
    if (!req)
        return;
    if (!valid_label_edit(req->label_add, req->n_label_add, req->label_rm, req->n_label_rm)) {
        swarm__update_secret_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "a label needs a key (and at most 1 KiB)", NULL, 0);
    }
    int r = find_secret(m, req->id, &s, err, sizeof(err));
    if (r < 0) {
        swarm__update_secret_request__free_unpacked(req, NULL);
        return net_call_reply(call, r, err, NULL, 0);
    }
    struct secret_edit *e = calloc(1, sizeof(*e));
    if (e) {
        e->call = call;
        e->req = req;
        snprintf(e->id, sizeof(e->id), "%s", s->id);
    }
    sw_erase(s->data.data, s->data.len);
    swarm__secret__free_unpacked(s, NULL);
    r = e ? mgr__batch_update(m, edit_secret, secret_edited, e) : -ENOMEM;
    if (r < 0) {
        free(e);
        swarm__update_secret_request__free_unpacked(req, NULL);
        mgr__reply_errno(call, r, "cannot update the secret");
    }
}

static void h_remove_secret(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    Swarm__Secret *s = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__GetSecretRequest *req = (Swarm__GetSecretRequest *)mgr__request(
        call, &swarm__get_secret_request__descriptor, payload, len);
    if (!req)
        return;
    int r = find_secret(m, req->id, &s, err, sizeof(err));
    swarm__get_secret_request__free_unpacked(req, NULL);
    if (r < 0)
        return net_call_reply(call, r, err, NULL, 0);
    sw_erase(s->data.data, s->data.len);
    /* refused while a service uses it */
    struct mgr_objs services;
    r = mgr__list(m, STORE_SERVICES, &swarm__service__descriptor, &services);
    const char *user = NULL;
    for (size_t i = 0; r >= 0 && i < services.n && !user; i++) {
        const Swarm__Service *svc = (const Swarm__Service *)services.v[i];
        for (size_t j = 0; svc->task && j < svc->task->n_secrets; j++)
            if (strcmp(svc->task->secrets[j]->secret_id, s->id) == 0)
                user = svc->name;
    }
    if (user) {
        snprintf(err, sizeof(err), "secret %s is in use by service %s", s->name, user);
        mgr__objs_free(&services);
        swarm__secret__free_unpacked(s, NULL);
        return net_call_reply(call, -EBUSY, err, NULL, 0);
    }
    mgr__objs_free(&services);
    log_info("secret %s (%s) removed", s->name, s->id);
    char id[SW_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", s->id);
    propose_and_answer(m, call, STORE_DELETE, STORE_SECRETS, id, &s->base, true, NULL);
}

/* ------------------------------------------------------------------ nodes */

struct node_edit {
    net_call *call;
    Swarm__UpdateNodeRequest *req;
};

static int edit_node(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct node_edit *e = userdata;
    Swarm__UpdateNodeRequest *req = e->req;
    if (req->set_availability)
        n->availability = req->availability;
    bool rotate = req->force_rotate_cert;
    if (req->set_role && req->role == SWARM__NODE_ROLE__ROLE_MANAGER &&
        n->desired_role != SWARM__NODE_ROLE__ROLE_MANAGER) {
        /* promotion: the node renews into a manager certificate, then joins raft */
        n->desired_role = SWARM__NODE_ROLE__ROLE_MANAGER;
        n->rejoin_allowed = false;
        rotate = true;
    }
    if (rotate)
        n->cert_rotate = SW_MAX(n->cert_rotate, n->cert_rotated) + 1;
    if (req->allow_rejoin) { /* checked again here: the node may have changed since */
        if (n->role != SWARM__NODE_ROLE__ROLE_WORKER ||
            n->desired_role != SWARM__NODE_ROLE__ROLE_WORKER)
            return -EPERM;
        if (n->state == SWARM__NODE_STATE__NODE_READY)
            return -EBUSY;
        n->rejoin_allowed = true;
    }
    if (req->deny_rejoin)
        n->rejoin_allowed = false;
    return labels_edit(&n->labels, &n->n_labels, req->label_add, req->n_label_add, req->label_rm,
                       req->n_label_rm);
}

static void node_edited(struct mgr *m, int status, void *userdata)
{
    struct node_edit *e = userdata;
    Swarm__Node *n = NULL;
    if (status == -EPERM && e->req->allow_rejoin) {
        net_call_reply(e->call, status, "the node became a manager meanwhile", NULL, 0);
    } else if (status == -EBUSY && e->req->allow_rejoin) {
        net_call_reply(e->call, status,
                       "the node came back in session meanwhile: it renews its certificate by "
                       "itself",
                       NULL, 0);
    } else if (status < 0) {
        mgr__reply_errno(e->call, status, "cannot update the node");
    } else if (mgr__get_node(m, e->req->id, &n) >= 0) {
        Swarm__GetNodeResponse resp = SWARM__GET_NODE_RESPONSE__INIT;
        resp.node = n;
        mgr__reply_msg(e->call, &resp.base);
        swarm__node__free_unpacked(n, NULL);
    } else {
        net_call_reply(e->call, 0, NULL, NULL, 0);
    }
    for (size_t i = 0; i < e->req->n_label_add; i++)
        if (e->req->label_add[i])
            swarm__label__free_unpacked(e->req->label_add[i], NULL);
    e->req->n_label_add = 0;
    swarm__update_node_request__free_unpacked(e->req, NULL);
    free(e);
}

static void h_update_node(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    if (!mgr__serving(m, call))
        return;
    Swarm__UpdateNodeRequest *req = (Swarm__UpdateNodeRequest *)mgr__request(
        call, &swarm__update_node_request__descriptor, payload, len);
    if (!req)
        return;
    if (req->set_availability &&
        (req->availability < SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE ||
         req->availability > SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN)) {
        swarm__update_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "availability must be active, pause or drain", NULL,
                              0);
    }
    if (!valid_label_edit(req->label_add, req->n_label_add, req->label_rm, req->n_label_rm)) {
        swarm__update_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "a label needs a key (and at most 1 KiB)", NULL, 0);
    }
    struct mgr_objs nodes;
    int r = mgr__list(m, STORE_NODES, &swarm__node__descriptor, &nodes);
    if (r < 0) {
        swarm__update_node_request__free_unpacked(req, NULL);
        return mgr__reply_errno(call, r, "cannot read nodes");
    }
    ssize_t i = mgr__objs_find(&nodes, req->id, node_names, err, sizeof(err), "node");
    if (i < 0) {
        mgr__objs_free(&nodes);
        swarm__update_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, (int)i, err, NULL, 0);
    }
    char id[SW_ID_LEN + 1];
    const Swarm__Node *target = (Swarm__Node *)nodes.v[i];
    snprintf(id, sizeof(id), "%s", target->id);
    if (req->set_role && req->role == SWARM__NODE_ROLE__ROLE_WORKER &&
        target->role == SWARM__NODE_ROLE__ROLE_MANAGER) {
        /* demotion first leaves raft; the rest of the request waits for another call */
        bool only_role = !req->set_availability && !req->force_rotate_cert && !req->n_label_add &&
                         !req->n_label_rm && !req->allow_rejoin && !req->deny_rejoin;
        if (!only_role) {
            mgr__objs_free(&nodes);
            swarm__update_node_request__free_unpacked(req, NULL);
            return net_call_reply(call, -EINVAL, "demote a manager on its own, then update it",
                                  NULL, 0);
        }
        mgr__demote(m, call, target);
        mgr__objs_free(&nodes);
        swarm__update_node_request__free_unpacked(req, NULL);
        return;
    }
    if (req->allow_rejoin && req->deny_rejoin) {
        mgr__objs_free(&nodes);
        swarm__update_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "allow or deny a rejoin, not both", NULL, 0);
    }
    if (req->allow_rejoin) {
        const char *bad = NULL;
        if (target->role != SWARM__NODE_ROLE__ROLE_WORKER ||
            target->desired_role != SWARM__NODE_ROLE__ROLE_WORKER)
            bad =
                "is a manager: only a worker joins again with its ID (demote it first: it "
                "comes back as a worker)";
        else if (target->state == SWARM__NODE_STATE__NODE_READY)
            bad = "is connected: it renews its certificate by itself (--force-rotate-cert)";
        else if (req->set_role || req->force_rotate_cert)
            bad = "--allow-rejoin goes without --role and --force-rotate-cert";
        if (bad) {
            snprintf(err, sizeof(err), "node %s %s", id, bad);
            mgr__objs_free(&nodes);
            swarm__update_node_request__free_unpacked(req, NULL);
            return net_call_reply(call, -EINVAL, err, NULL, 0);
        }
        log_info("node %s may join again with its node ID (swarmd join --rejoin)", id);
    }
    if (req->set_role && req->role != SWARM__NODE_ROLE__ROLE_WORKER &&
        req->role != SWARM__NODE_ROLE__ROLE_MANAGER) {
        mgr__objs_free(&nodes);
        swarm__update_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "role must be manager or worker", NULL, 0);
    }
    mgr__objs_free(&nodes);
    char *full = strdup(id);
    struct node_edit *e = calloc(1, sizeof(*e));
    if (!full || !e) {
        free(full);
        free(e);
        swarm__update_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    if (req->id != protobuf_c_empty_string)
        free(req->id);
    req->id = full;
    e->call = call;
    e->req = req;
    r = mgr__node_update(m, id, edit_node, node_edited, e);
    if (r < 0) {
        swarm__update_node_request__free_unpacked(req, NULL);
        free(e);
        mgr__reply_errno(call, r, "cannot update the node");
    }
}

int mgr__services_register(struct mgr *m)
{
    static const struct {
        const char *method;
        net_handler_fn fn;
    } methods[] = {
        {"Control.CreateService", h_create_service}, {"Control.GetService", h_get_service},
        {"Control.ListServices", h_list_services},   {"Control.UpdateService", h_update_service},
        {"Control.RemoveService", h_remove_service}, {"Control.ListTasks", h_list_tasks},
        {"Control.CreateSecret", h_create_secret},   {"Control.GetSecret", h_get_secret},
        {"Control.ListSecrets", h_list_secrets},     {"Control.RemoveSecret", h_remove_secret},
        {"Control.UpdateSecret", h_update_secret},   {"Control.UpdateNode", h_update_node},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int r = mgr__register_leader_only(m, methods[i].method, NET_AUTH_MANAGER, methods[i].fn);
        if (r < 0)
            return r;
    }
    return 0;
}
