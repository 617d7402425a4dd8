/* fake-control's services, tasks and secrets: a small mutable in-memory cluster that
 * answers the Control.* methods of services, tasks and secrets like the manager would
 * (and sends secret data back on purpose: swarmctl must never show it). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "proto/frame.h"
#include "proto/swarm.pb-c.h"
#include "tests/unit/cli/fake.h"

#define NS 1000000000ULL
#define MAX_OBJECTS 32

struct fsvc {
    char id[32];
    Swarm__CreateServiceRequest *spec; /* owned (unpacked) */
    uint64_t version, spec_version, running, desired, created, updated;
};

struct fsec {
    char id[32];
    Swarm__CreateSecretRequest *req; /* owned: name, data, labels */
    uint64_t version, created, updated;
};

static struct fsvc *services[MAX_OBJECTS];
static struct fsec *secrets[MAX_OBJECTS];
static unsigned next_id = 1;
static uint64_t now_ns;
static const char *data_dir; /* where received secret data goes, for the test to compare */

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ tasks (fixed) */

struct ftask {
    const char *id, *service_id, *node_id, *err, *message;
    uint64_t slot;
    Swarm__TaskState desired, state;
    int32_t pid, exit_code;
    uint64_t ago_s;
};

#define WEB_ID "svcweb0000000000000000001"
#define AGENT_ID "svcagent00000000000000001"

static const struct ftask fake_tasks[] = {
    {"tsk1old000000000000000001", WEB_ID, "gone00000000000000000000x", "task: non-zero exit (1)",
     "exited", 1, SWARM__TASK_STATE__TASK_SHUTDOWN, SWARM__TASK_STATE__TASK_FAILED, 0, 1, 365},
    {"tsk3000000000000000000003", WEB_ID, "", "", "no suitable node (3 nodes lack memory)", 3,
     SWARM__TASK_STATE__TASK_RUNNING, SWARM__TASK_STATE__TASK_PENDING, 0, 0, 605},
    {"tsk2000000000000000000002", WEB_ID, "mgr1000000000000000000001", "", "started", 2,
     SWARM__TASK_STATE__TASK_RUNNING, SWARM__TASK_STATE__TASK_RUNNING, 4343, 0, 185},
    {"tsk1000000000000000000001", WEB_ID, "wrka000000000000000000001", "", "started", 1,
     SWARM__TASK_STATE__TASK_RUNNING, SWARM__TASK_STATE__TASK_RUNNING, 4242, 0, 185},
    {"tska200000000000000000002", AGENT_ID, "wrka000000000000000000001", "", "started", 0,
     SWARM__TASK_STATE__TASK_RUNNING, SWARM__TASK_STATE__TASK_RUNNING, 5001, 0, 7200},
    {"tska100000000000000000001", AGENT_ID, "mgr1000000000000000000001", "", "started", 0,
     SWARM__TASK_STATE__TASK_RUNNING, SWARM__TASK_STATE__TASK_RUNNING, 5000, 0, 7200},
};

/* ------------------------------------------------------------------ lookups */

static struct fsvc *find_service(const char *key, int *ret_idx)
{
    int found = -1;
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (services[i] &&
            (strcmp(services[i]->id, key) == 0 || strcmp(services[i]->spec->name, key) == 0)) {
            *ret_idx = i;
            return services[i];
        }
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (services[i] && key[0] && strncmp(services[i]->id, key, strlen(key)) == 0) {
            if (found >= 0)
                return NULL;
            found = i;
        }
    if (found < 0)
        return NULL;
    *ret_idx = found;
    return services[found];
}

static struct fsec *find_secret(const char *key, int *ret_idx)
{
    int found = -1;
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (secrets[i] &&
            (strcmp(secrets[i]->id, key) == 0 || strcmp(secrets[i]->req->name, key) == 0)) {
            *ret_idx = i;
            return secrets[i];
        }
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (secrets[i] && key[0] && strncmp(secrets[i]->id, key, strlen(key)) == 0) {
            if (found >= 0)
                return NULL;
            found = i;
        }
    if (found < 0)
        return NULL;
    *ret_idx = found;
    return secrets[found];
}

static int free_slot(void *const *arr)
{
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (!arr[i])
            return i;
    return -1;
}

/* Every secret a task spec names must exist; fills secret_id. */
static int resolve_secrets(Swarm__TaskSpec *t, const char **error)
{
    static char msg[128];
    for (size_t i = 0; t && i < t->n_secrets; i++) {
        int idx;
        struct fsec *s = find_secret(t->secrets[i]->secret_name, &idx);
        if (!s) {
            snprintf(msg, sizeof(msg), "secret not found: %s", t->secrets[i]->secret_name);
            *error = msg;
            return -ENOENT;
        }
        if (t->secrets[i]->secret_id != protobuf_c_empty_string)
            free(t->secrets[i]->secret_id);
        t->secrets[i]->secret_id = strdup(s->id);
    }
    return 0;
}

/* ------------------------------------------------------------------ responses */

static void pack_service(const struct fsvc *f, uint8_t **out, size_t *out_len)
{
    Swarm__Meta meta = SWARM__META__INIT;
    meta.version = f->version;
    meta.created_at = f->created;
    meta.updated_at = f->updated;
    Swarm__Service s = SWARM__SERVICE__INIT;
    s.id = (char *)f->id;
    s.meta = &meta;
    s.name = f->spec->name;
    s.labels = f->spec->labels;
    s.n_labels = f->spec->n_labels;
    s.global = f->spec->global;
    s.replicas = f->spec->replicas;
    s.task = f->spec->task;
    s.spec_version = f->spec_version;
    Swarm__ServiceResponse resp = SWARM__SERVICE_RESPONSE__INIT;
    resp.service = &s;
    resp.running = f->running;
    resp.desired = f->desired;
    proto_pack(&resp.base, out, out_len);
}

static void fill_secret(Swarm__Secret *s, Swarm__Meta *meta, const struct fsec *f, char *digest)
{
    swarm__meta__init(meta);
    meta->version = f->version;
    meta->created_at = f->created;
    meta->updated_at = f->updated;
    swarm__secret__init(s);
    s->id = (char *)f->id;
    s->meta = meta;
    s->name = f->req->name;
    s->labels = f->req->labels;
    s->n_labels = f->req->n_labels;
    s->data = f->req->data; /* deliberately sent: swarmctl must not show it */
    snprintf(digest, 65, "%064zx", f->req->data.len);
    s->digest = digest;
}

static void pack_secret(const struct fsec *f, uint8_t **out, size_t *out_len)
{
    Swarm__Secret s;
    Swarm__Meta meta;
    char digest[65];
    fill_secret(&s, &meta, f, digest);
    Swarm__SecretResponse resp = SWARM__SECRET_RESPONSE__INIT;
    resp.secret = &s;
    proto_pack(&resp.base, out, out_len);
}

/* ------------------------------------------------------------------ methods */

static int create_service(Swarm__CreateServiceRequest *req, const char **error, struct fsvc **ret)
{
    int idx;
    if (find_service(req->name, &idx)) {
        *error = "a service with this name already exists";
        return -EEXIST;
    }
    int r = resolve_secrets(req->task, error);
    if (r < 0)
        return r;
    int slot = free_slot((void *const *)services);
    struct fsvc *f = slot >= 0 ? calloc(1, sizeof(*f)) : NULL;
    if (!f) {
        *error = "too many services";
        return -ENOSPC;
    }
    snprintf(f->id, sizeof(f->id), "svcnew%019u", next_id++);
    f->spec = req;
    f->version = f->spec_version = 1;
    f->created = f->updated = now_ns;
    f->desired = req->global ? 4 : req->replicas;
    services[slot] = f;
    *ret = f;
    return 0;
}

static void seed(void)
{
    now_ns = wall_ns();
    /* web: replicated 3, 2 running, a secret, limits, a constraint */
    char *web_cmd[] = {"/bin/sleep", "3600"};
    char *web_env[] = {"MODE=prod"};
    char *web_cons[] = {"node.role==worker"};
    Swarm__SecretRef ref = SWARM__SECRET_REF__INIT;
    ref.secret_name = "db_pw";
    ref.target = "db_pw";
    ref.mode = 0444;
    Swarm__SecretRef *refs[] = {&ref};
    Swarm__TaskSpec web = SWARM__TASK_SPEC__INIT;
    web.command = web_cmd;
    web.n_command = 2;
    web.env = web_env;
    web.n_env = 1;
    web.constraints = web_cons;
    web.n_constraints = 1;
    web.secrets = refs;
    web.n_secrets = 1;
    web.limit_memory = 64 << 20;
    web.limit_nano_cpus = 500000000;
    web.restart_condition = "any";
    web.restart_delay_ns = 5 * NS;
    /* agent: global, a long command */
    char *agent_cmd[] = {"/usr/local/bin/agent", "--collect", "cpu,memory,disk,network",
                         "--interval", "10s"};
    Swarm__TaskSpec agent = SWARM__TASK_SPEC__INIT;
    agent.command = agent_cmd;
    agent.n_command = SW_ARRAY_SIZE(agent_cmd);

    /* secrets first: web names db_pw */
    static const struct {
        const char *id, *name, *data;
        uint64_t created_ago, updated_ago;
    } seeds[] = {
        {"sec0000000000000000000001", "db_pw", "PRELOADEDSECRETDATA1", 2 * 3600, 2 * 3600},
        {"sec0000000000000000000002", "tls_key", "PRELOADEDSECRETDATA2", 3 * 86400, 65},
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(seeds); i++) {
        Swarm__CreateSecretRequest c = SWARM__CREATE_SECRET_REQUEST__INIT;
        Swarm__Label l = SWARM__LABEL__INIT;
        Swarm__Label *ls[] = {&l};
        l.key = "env";
        l.value = "prod";
        c.name = (char *)seeds[i].name;
        c.data.data = (uint8_t *)seeds[i].data;
        c.data.len = strlen(seeds[i].data);
        c.labels = ls;
        c.n_labels = i == 1;
        uint8_t *buf = NULL;
        size_t len = 0;
        proto_pack(&c.base, &buf, &len);
        struct fsec *f = calloc(1, sizeof(*f));
        snprintf(f->id, sizeof(f->id), "%s", seeds[i].id);
        f->req = swarm__create_secret_request__unpack(NULL, len, buf);
        f->version = 5;
        f->created = now_ns - seeds[i].created_ago * NS;
        f->updated = now_ns - seeds[i].updated_ago * NS;
        free(buf);
        secrets[i] = f;
    }
    const struct {
        const char *id, *name;
        bool global;
        Swarm__TaskSpec *task;
        uint64_t replicas, running, desired;
    } svcs[] = {
        {WEB_ID, "web", false, &web, 3, 2, 3},
        {AGENT_ID, "agent", true, &agent, 0, 2, 2},
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(svcs); i++) {
        Swarm__CreateServiceRequest c = SWARM__CREATE_SERVICE_REQUEST__INIT;
        c.name = (char *)svcs[i].name;
        c.global = svcs[i].global;
        c.replicas = svcs[i].replicas;
        c.task = svcs[i].task;
        uint8_t *buf = NULL;
        size_t len = 0;
        proto_pack(&c.base, &buf, &len);
        Swarm__CreateServiceRequest *req = swarm__create_service_request__unpack(NULL, len, buf);
        free(buf);
        struct fsvc *f = NULL;
        const char *error;
        create_service(req, &error, &f);
        snprintf(f->id, sizeof(f->id), "%s", svcs[i].id);
        f->running = svcs[i].running;
        f->desired = svcs[i].desired;
        f->version = 9;
        f->spec_version = 2;
        f->created = 1767225600ULL * NS;
        f->updated = 1767225600ULL * NS + 90 * NS;
    }
}

void fake_objects_init(const char *dir)
{
    data_dir = dir;
    seed();
}

#define UNPACK(type, fn)                                          \
    Swarm__##type *req = swarm__##fn##__unpack(NULL, in_len, in); \
    if (!req) {                                                   \
        *status = -EINVAL;                                        \
        *error = "bad request";                                   \
        return true;                                              \
    }

bool fake_objects_handle(const char *method, const uint8_t *in, size_t in_len, int *status,
                         const char **error, uint8_t **out, size_t *out_len)
{
    int idx;
    if (strcmp(method, "Control.CreateService") == 0) {
        UNPACK(CreateServiceRequest, create_service_request);
        struct fsvc *f = NULL;
        *status = create_service(req, error, &f);
        if (*status < 0) {
            swarm__create_service_request__free_unpacked(req, NULL);
            return true;
        }
        pack_service(f, out, out_len);
    } else if (strcmp(method, "Control.GetService") == 0 ||
               strcmp(method, "Control.RemoveService") == 0) {
        UNPACK(GetServiceRequest, get_service_request);
        struct fsvc *f = find_service(req->id, &idx);
        swarm__get_service_request__free_unpacked(req, NULL);
        if (!f) {
            *status = -ENOENT;
            *error = "service not found";
        } else if (strcmp(method, "Control.GetService") == 0) {
            pack_service(f, out, out_len);
        } else {
            swarm__create_service_request__free_unpacked(f->spec, NULL);
            free(f);
            services[idx] = NULL;
        }
    } else if (strcmp(method, "Control.ListServices") == 0) {
        Swarm__ListServicesResponse resp = SWARM__LIST_SERVICES_RESPONSE__INIT;
        Swarm__ServiceResponse *items[MAX_OBJECTS];
        uint8_t *bufs[MAX_OBJECTS];
        for (int i = 0; i < MAX_OBJECTS; i++) {
            size_t len = 0;
            if (!services[i])
                continue;
            pack_service(services[i], &bufs[resp.n_services], &len);
            items[resp.n_services] =
                swarm__service_response__unpack(NULL, len, bufs[resp.n_services]);
            resp.n_services++;
        }
        resp.services = items;
        proto_pack(&resp.base, out, out_len);
        for (size_t i = 0; i < resp.n_services; i++) {
            swarm__service_response__free_unpacked(items[i], NULL);
            free(bufs[i]);
        }
    } else if (strcmp(method, "Control.UpdateService") == 0) {
        UNPACK(UpdateServiceRequest, update_service_request);
        struct fsvc *f = find_service(req->id, &idx);
        if (!f) {
            *status = -ENOENT;
            *error = "service not found";
        } else if (req->set_replicas && f->spec->global) {
            *status = -EINVAL;
            *error = "agent is a global service: it cannot be scaled";
        } else if (req->task && (*status = resolve_secrets(req->task, error)) < 0) {
            /* error set */
        } else {
            if (req->set_replicas) {
                f->spec->replicas = req->replicas;
                f->desired = req->replicas;
            }
            if (req->task) {
                swarm__task_spec__free_unpacked(f->spec->task, NULL);
                f->spec->task = req->task;
                req->task = NULL;
                f->spec_version++;
            }
            f->version++;
            f->updated = now_ns;
            pack_service(f, out, out_len);
        }
        swarm__update_service_request__free_unpacked(req, NULL);
    } else if (strcmp(method, "Control.ListTasks") == 0) {
        UNPACK(ListTasksRequest, list_tasks_request);
        struct fsvc *f = req->service[0] ? find_service(req->service, &idx) : NULL;
        if (req->service[0] && !f) {
            swarm__list_tasks_request__free_unpacked(req, NULL);
            *status = -ENOENT;
            *error = "service not found";
            return true;
        }
        swarm__list_tasks_request__free_unpacked(req, NULL);
        Swarm__Task tasks[SW_ARRAY_SIZE(fake_tasks)];
        Swarm__Meta metas[SW_ARRAY_SIZE(fake_tasks)];
        Swarm__Task *ptrs[SW_ARRAY_SIZE(fake_tasks)];
        Swarm__ListTasksResponse resp = SWARM__LIST_TASKS_RESPONSE__INIT;
        for (size_t i = 0; i < SW_ARRAY_SIZE(fake_tasks); i++) {
            const struct ftask *t = &fake_tasks[i];
            if (f && strcmp(f->id, t->service_id) != 0)
                continue;
            Swarm__Task *m = &tasks[resp.n_tasks];
            swarm__task__init(m);
            swarm__meta__init(&metas[resp.n_tasks]);
            metas[resp.n_tasks].created_at = now_ns - 3600 * NS;
            m->meta = &metas[resp.n_tasks];
            m->id = (char *)t->id;
            m->service_id = (char *)t->service_id;
            m->node_id = (char *)t->node_id;
            m->err = (char *)t->err;
            m->message = (char *)t->message;
            m->slot = t->slot;
            m->desired_state = t->desired;
            m->state = t->state;
            m->pid = t->pid;
            m->exit_code = t->exit_code;
            m->state_at = now_ns - t->ago_s * NS;
            m->spec_version = 2;
            ptrs[resp.n_tasks++] = m;
        }
        resp.tasks = ptrs;
        proto_pack(&resp.base, out, out_len);
    } else if (strcmp(method, "Control.CreateSecret") == 0) {
        UNPACK(CreateSecretRequest, create_secret_request);
        int slot = free_slot((void *const *)secrets);
        if (find_secret(req->name, &idx)) {
            *status = -EEXIST;
            *error = "a secret with this name already exists";
        } else if (req->data.len == 0 || req->data.len > 500 * 1024) {
            *status = -EINVAL;
            *error = "secret data must be 1 byte to 500 KiB";
        } else if (slot < 0) {
            *status = -ENOSPC;
            *error = "too many secrets";
        } else {
            /* what arrived, for the test to compare with what was sent */
            char path[4096];
            snprintf(path, sizeof(path), "%s/received-%s", data_dir, req->name);
            FILE *fp = fopen(path, "wb");
            if (fp) {
                fwrite(req->data.data, 1, req->data.len, fp);
                fclose(fp);
            }
            struct fsec *f = calloc(1, sizeof(*f));
            snprintf(f->id, sizeof(f->id), "secnew%019u", next_id++);
            f->req = req;
            f->version = 1;
            f->created = f->updated = now_ns;
            secrets[slot] = f;
            pack_secret(f, out, out_len);
            return true;
        }
        swarm__create_secret_request__free_unpacked(req, NULL);
    } else if (strcmp(method, "Control.GetSecret") == 0 ||
               strcmp(method, "Control.RemoveSecret") == 0) {
        UNPACK(GetSecretRequest, get_secret_request);
        struct fsec *f = find_secret(req->id, &idx);
        swarm__get_secret_request__free_unpacked(req, NULL);
        if (!f) {
            *status = -ENOENT;
            *error = "secret not found";
            return true;
        }
        if (strcmp(method, "Control.GetSecret") == 0) {
            pack_secret(f, out, out_len);
            return true;
        }
        for (int i = 0; i < MAX_OBJECTS; i++) {
            const Swarm__TaskSpec *t = services[i] ? services[i]->spec->task : NULL;
            for (size_t k = 0; t && k < t->n_secrets; k++) {
                if (strcmp(t->secrets[k]->secret_name, f->req->name) == 0) {
                    static char msg[256];
                    snprintf(msg, sizeof(msg), "secret %s is in use by service %s", f->req->name,
                             services[i]->spec->name);
                    *status = -EBUSY;
                    *error = msg;
                    return true;
                }
            }
        }
        swarm__create_secret_request__free_unpacked(f->req, NULL);
        free(f);
        secrets[idx] = NULL;
    } else if (strcmp(method, "Control.ListSecrets") == 0) {
        Swarm__ListSecretsResponse resp = SWARM__LIST_SECRETS_RESPONSE__INIT;
        Swarm__Secret items[MAX_OBJECTS];
        Swarm__Meta metas[MAX_OBJECTS];
        Swarm__Secret *ptrs[MAX_OBJECTS];
        char digests[MAX_OBJECTS][65];
        for (int i = 0; i < MAX_OBJECTS; i++) {
            if (!secrets[i])
                continue;
            fill_secret(&items[resp.n_secrets], &metas[resp.n_secrets], secrets[i],
                        digests[resp.n_secrets]);
            ptrs[resp.n_secrets] = &items[resp.n_secrets];
            resp.n_secrets++;
        }
        resp.secrets = ptrs;
        proto_pack(&resp.base, out, out_len);
    } else {
        return false;
    }
    return true;
}
