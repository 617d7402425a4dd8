/* swarmctl service create|ls|inspect|ps|scale|update|rm. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/swarmctl.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "proto/swarm.pb-c.h"

#define COMMAND_COLUMN_MAX 40

static const char help_service[] =
    "Usage:  swarmctl service COMMAND\n"
    "\n"
    "Manage services\n"
    "\n"
    "Commands:\n"
    "  create      Create a new service\n"
    "  inspect     Display detailed information on one or more services\n"
    "  ls          List services\n"
    "  ps          List the tasks of a service\n"
    "  rm          Remove one or more services\n"
    "  scale       Scale one or multiple replicated services\n"
    "  update      Update a service\n"
    "\n"
    "Options:\n"
    "  -h, --help  Print usage\n"
    "\n"
    "Run 'swarmctl service COMMAND --help' for more information on a command.\n";

static const char help_create_head[] =
    "Usage:  swarmctl service create [OPTIONS] --name NAME [--] COMMAND [ARG...]\n"
    "\n"
    "Create a new service and print its ID\n"
    "\n"
    "Options:\n"
    "  -h, --help                       Print usage\n"
    "      --label K=V                  Service label (repeatable)\n"
    "      --mode MODE                  replicated (default) or global (one task per node)\n"
    "      --name NAME                  Service name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63)\n"
    "      --replicas N                 Number of tasks (default 1)\n";

static const char help_update_head[] =
    "Usage:  swarmctl service update [OPTIONS] SERVICE [-- COMMAND [ARG...]]\n"
    "\n"
    "Update a service: a new command or any task flag below replaces that part of the\n"
    "task spec (a repeatable flag replaces the whole list), and the tasks are replaced\n"
    "one at a time\n"
    "\n"
    "Options:\n"
    "  -h, --help                       Print usage\n"
    "      --replicas N                 Number of tasks\n";

static const char help_ls[] =
    "Usage:  swarmctl service ls [OPTIONS]\n"
    "\n"
    "List services\n"
    "\n"
    "Aliases:\n"
    "  ls, list\n"
    "\n"
    "Options:\n"
    "      --format string   Output format: table (default) or json (an array of objects)\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display service IDs\n";

static const char help_inspect[] =
    "Usage:  swarmctl service inspect [OPTIONS] SERVICE [SERVICE...]\n"
    "\n"
    "Display detailed information on one or more services (by ID, unique ID prefix or\n"
    "name), as a JSON array unless --pretty is given\n"
    "\n"
    "Options:\n"
    "  -h, --help     Print usage\n"
    "      --pretty   Print the information in a human friendly format\n";

static const char help_ps[] =
    "Usage:  swarmctl service ps [OPTIONS] SERVICE\n"
    "\n"
    "List the tasks of a service, the current ones with their history below them\n"
    "\n"
    "Options:\n"
    "      --format string   Output format: table (default) or json (an array of objects)\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display task IDs\n";

static const char help_scale[] =
    "Usage:  swarmctl service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n"
    "\n"
    "Scale one or multiple replicated services\n"
    "\n"
    "Options:\n"
    "  -h, --help   Print usage\n";

static const char help_rm[] =
    "Usage:  swarmctl service rm SERVICE [SERVICE...]\n"
    "\n"
    "Remove one or more services and stop their tasks\n"
    "\n"
    "Aliases:\n"
    "  rm, remove\n"
    "\n"
    "Options:\n"
    "  -h, --help   Print usage\n";

/* ------------------------------------------------------------------ strings */

static const char *task_state_str(Swarm__TaskState s)
{
    switch (s) {
        case SWARM__TASK_STATE__TASK_NEW:
            return "new";
        case SWARM__TASK_STATE__TASK_PENDING:
            return "pending";
        case SWARM__TASK_STATE__TASK_ASSIGNED:
            return "assigned";
        case SWARM__TASK_STATE__TASK_ACCEPTED:
            return "accepted";
        case SWARM__TASK_STATE__TASK_STARTING:
            return "starting";
        case SWARM__TASK_STATE__TASK_RUNNING:
            return "running";
        case SWARM__TASK_STATE__TASK_COMPLETE:
            return "complete";
        case SWARM__TASK_STATE__TASK_SHUTDOWN:
            return "shutdown";
        case SWARM__TASK_STATE__TASK_FAILED:
            return "failed";
        case SWARM__TASK_STATE__TASK_REJECTED:
            return "rejected";
        case SWARM__TASK_STATE__TASK_ORPHANED:
            return "orphaned";
        default:
            return "unknown";
    }
}

/* "Running" for "running". */
static void title(const char *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s", s);
    if (buf[0] >= 'a' && buf[0] <= 'z')
        buf[0] = (char)(buf[0] - 'a' + 'A');
}

static const char *mode_str(const Swarm__Service *s)
{
    return s->global ? "global" : "replicated";
}

/* ------------------------------------------------------------------ output */

static int service_resp_cmp(const void *a, const void *b)
{
    const Swarm__ServiceResponse *x = *(Swarm__ServiceResponse *const *)a;
    const Swarm__ServiceResponse *y = *(Swarm__ServiceResponse *const *)b;
    if (!x->service || !y->service)
        return !x->service - !y->service;
    int c = strcmp(x->service->name, y->service->name);
    return c ? c : strcmp(x->service->id, y->service->id);
}

static void service_json(struct cli_json *j, const Swarm__ServiceResponse *r, bool full)
{
    const Swarm__Service *s = r->service;
    char replicas[64];
    snprintf(replicas, sizeof(replicas), "%" PRIu64 "/%" PRIu64, r->running, r->desired);
    cli_json_begin_object(j);
    cli_json_kv_string(j, "id", s->id);
    cli_json_kv_string(j, "name", s->name);
    cli_json_kv_string(j, "mode", mode_str(s));
    cli_json_kv_string(j, "replicas", replicas);
    cli_json_kv_uint(j, "running", r->running);
    cli_json_kv_uint(j, "desired", r->desired);
    if (s->meta) {
        if (full)
            cli_json_kv_uint(j, "version", s->meta->version);
        ctl_json_time(j, "created_at", s->meta->created_at);
        ctl_json_time(j, "updated_at", s->meta->updated_at);
    }
    if (full) {
        if (!s->global)
            cli_json_kv_uint(j, "spec_replicas", s->replicas);
        cli_json_kv_uint(j, "spec_version", s->spec_version);
        ctl_json_labels(j, "labels", s->labels, s->n_labels);
        static const Swarm__TaskSpec empty = SWARM__TASK_SPEC__INIT;
        ctl_json_task_spec(j, "task", s->task ? s->task : &empty);
    } else {
        cli_json_key(j, "command");
        cli_json_begin_array(j);
        for (size_t i = 0; s->task && i < s->task->n_command; i++)
            cli_json_string(j, s->task->command[i]);
        cli_json_end_array(j);
    }
    cli_json_end_object(j);
}

static void service_pretty(const Swarm__ServiceResponse *r)
{
    const Swarm__Service *s = r->service;
    char t[64];
    printf("ID:\t\t\t%s\n", s->id);
    printf("Name:\t\t\t%s\n", s->name);
    if (s->n_labels) {
        printf("Labels:\n");
        for (size_t i = 0; i < s->n_labels; i++)
            printf(" - %s=%s\n", s->labels[i]->key, s->labels[i]->value);
    }
    if (s->meta) {
        ctl_fmt_time(s->meta->created_at, t, sizeof(t));
        printf("Created at:\t\t%s\n", t);
        ctl_fmt_time(s->meta->updated_at, t, sizeof(t));
        printf("Updated at:\t\t%s\n", t);
    }
    if (s->global) {
        printf("Mode:\t\t\tGlobal\n");
    } else {
        printf("Mode:\t\t\tReplicated\n");
        printf(" Replicas:\t\t%" PRIu64 "\n", s->replicas);
    }
    printf("Tasks running:\t\t%" PRIu64 "/%" PRIu64 "\n", r->running, r->desired);
    printf("Task spec (version %" PRIu64 "):\n", s->spec_version);
    static const Swarm__TaskSpec empty = SWARM__TASK_SPEC__INIT;
    ctl_pretty_task_spec(s->task ? s->task : &empty, " ");
}

/* ------------------------------------------------------------------ service create */

/* The server's answer to create/update: the service. */
static const Swarm__Service *resp_service(ProtobufCMessage *m)
{
    const Swarm__ServiceResponse *r = (Swarm__ServiceResponse *)m;
    if (!r->service)
        fprintf(stderr, PROG ": swarmd answered without the service\n");
    return r->service;
}

static int cmd_service_create(struct ctl *ctl, int argc, char **argv)
{
    enum { OPT_NAME = 0x100, OPT_REPLICAS, OPT_MODE, OPT_LABEL };
    static const struct option opts[] = {
        CTL_SPEC_LONGOPTS,
        {"name", required_argument, NULL, OPT_NAME},
        {"replicas", required_argument, NULL, OPT_REPLICAS},
        {"mode", required_argument, NULL, OPT_MODE},
        {"label", required_argument, NULL, OPT_LABEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const modes[] = {"replicated", "global"};
    const char *cmd = "service create";
    _cleanup_(ctl_spec_finish) struct ctl_spec spec;
    ctl_spec_init(&spec);
    Swarm__CreateServiceRequest req = SWARM__CREATE_SERVICE_REQUEST__INIT;
    Swarm__Label **labels = NULL;
    size_t n_labels = 0;
    const char *name = NULL;
    bool replicas_given = false;
    uint64_t replicas = 1;
    int mode = 0, c, r = CLI_EXIT_OK;

    optind = 0;
    while (r == CLI_EXIT_OK &&
           (c = getopt_long(argc, argv, "+:h" CTL_SPEC_SHORTOPTS, opts, NULL)) != -1) {
        switch (c) {
            case OPT_NAME:
                if (!cli_name_valid(optarg))
                    r = cli_usage_error(PROG, cmd,
                                        "invalid --name \"%s\": letters, digits, '_', '.' and "
                                        "'-', starting with a letter or digit, at most 63",
                                        optarg);
                name = optarg;
                break;
            case OPT_REPLICAS:
                if (cli_parse_uint(optarg, UINT32_MAX, &replicas) < 0)
                    r = cli_usage_error(PROG, cmd,
                                        "invalid --replicas \"%s\": a number of tasks, 0 or more",
                                        optarg);
                replicas_given = true;
                break;
            case OPT_MODE:
                mode = cli_parse_choice(optarg, modes, SW_ARRAY_SIZE(modes));
                if (mode < 0)
                    r = cli_usage_error(PROG, cmd, "invalid --mode \"%s\": replicated or global",
                                        optarg);
                break;
            case OPT_LABEL: {
                Swarm__Label *l = NULL;
                r = ctl_parse_label(optarg, "--label", cmd, &l);
                if (r != CLI_EXIT_OK)
                    break;
                Swarm__Label **n = realloc(labels, (n_labels + 1) * sizeof(*n));
                if (!n) {
                    ctl_label_free(l);
                    r = CLI_EXIT_FAILURE;
                    break;
                }
                labels = n;
                labels[n_labels++] = l;
                break;
            }
            case 'h':
                ctl_labels_free(labels, n_labels);
                return ctl_print_help(help_create_head) + ctl_print_help(ctl_spec_help);
            default:
                r = ctl_spec_option(&spec, c, optarg, cmd);
                if (r == -1)
                    r = ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (r == CLI_EXIT_OK && !name)
        r = cli_usage_error(PROG, cmd, "--name is required");
    if (r == CLI_EXIT_OK && mode == 1 && replicas_given)
        r = cli_usage_error(PROG, cmd, "--replicas cannot be used with --mode global");
    if (r == CLI_EXIT_OK)
        r = ctl_spec_set_command(&spec, argc - optind, argv + optind, cmd);
    if (r == CLI_EXIT_OK)
        r = ctl_spec_check(&spec, cmd);
    if (r == CLI_EXIT_OK)
        r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK) {
        ctl_labels_free(labels, n_labels);
        return r;
    }

    Swarm__TaskSpec task = SWARM__TASK_SPEC__INIT;
    ctl_spec_apply(&spec, &task);
    req.name = (char *)name;
    req.global = mode == 1;
    req.replicas = mode == 1 ? 0 : replicas;
    req.labels = labels;
    req.n_labels = n_labels;
    req.task = &task;
    ProtobufCMessage *m = NULL;
    r = ctl_call_object(ctl, "Control.CreateService", &req.base,
                        &swarm__service_response__descriptor, NULL, name, &m);
    ctl_labels_free(labels, n_labels);
    if (r != CALL_OK)
        return CLI_EXIT_FAILURE;
    const Swarm__Service *s = resp_service(m);
    int code = s ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    if (s)
        printf("%s\n", s->id);
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ service ls */

static int cmd_service_ls(struct ctl *ctl, int argc, char **argv)
{
    Swarm__ListServicesRequest req = SWARM__LIST_SERVICES_REQUEST__INIT;
    const struct ctl_query q = {
        .cmd = "service ls",
        .help = help_ls,
        .allow_table = true,
        .format = FORMAT_TABLE,
        .method = "Control.ListServices",
        .req = &req.base,
        .desc = &swarm__list_services_response__descriptor,
    };
    bool quiet;
    enum ctl_format format;
    ProtobufCMessage *m;
    int r = ctl_query(ctl, &q, argc, argv, &quiet, &format, &m);
    if (r != CLI_EXIT_OK || !m)
        return r;
    Swarm__ListServicesResponse *resp = (Swarm__ListServicesResponse *)m;
    /* drop entries without a service (never sent by a sane server) */
    size_t n = 0;
    for (size_t i = 0; i < resp->n_services; i++)
        if (resp->services[i]->service)
            resp->services[n++] = resp->services[i];
    for (size_t i = n; i < resp->n_services; i++)
        protobuf_c_message_free_unpacked(&resp->services[i]->base, NULL);
    resp->n_services = n;
    if (n > 1)
        qsort(resp->services, n, sizeof(resp->services[0]), service_resp_cmp);

    int code = CLI_EXIT_OK;
    if (quiet) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", resp->services[i]->service->id);
    } else if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_array(&j);
        for (size_t i = 0; i < n; i++)
            service_json(&j, resp->services[i], false);
        cli_json_end_array(&j);
        if (cli_json_finish(&j) == -EINVAL)
            code = CLI_EXIT_FAILURE;
    } else {
        static const char *const headers[] = {"ID", "NAME", "MODE", "REPLICAS", "COMMAND"};
        cli_table *t = NULL;
        r = cli_table_create(SW_ARRAY_SIZE(headers), headers, &t);
        for (size_t i = 0; r >= 0 && i < n; i++) {
            const Swarm__ServiceResponse *sr = resp->services[i];
            const Swarm__Service *s = sr->service;
            char replicas[64], command[512] = "";
            snprintf(replicas, sizeof(replicas), "%" PRIu64 "/%" PRIu64, sr->running, sr->desired);
            if (s->task)
                ctl_fmt_command(s->task->command, s->task->n_command, COMMAND_COLUMN_MAX, command,
                                sizeof(command));
            const char *row[] = {s->id, s->name, mode_str(s), replicas, command};
            r = cli_table_add_row(t, row);
        }
        if (r >= 0)
            r = cli_table_print(t, stdout);
        if (r < 0) {
            fprintf(stderr, PROG ": %s\n", strerror(-r));
            code = CLI_EXIT_FAILURE;
        }
        cli_table_free(t);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ service inspect */

static int cmd_service_inspect(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "service inspect";
    bool pretty = false;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case 'p':
                pretty = true;
                break;
            case 'h':
                return ctl_print_help(help_inspect);
            default:
                return ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (optind >= argc)
        return cli_usage_error(PROG, cmd,
                               "\"swarmctl service inspect\" requires at least 1 "
                               "argument");
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, cmd, "a service name must not be empty");
    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;

    int code = CLI_EXIT_OK;
    struct cli_json j;
    cli_json_init(&j, stdout, true);
    if (!pretty)
        cli_json_begin_array(&j);
    bool first = true;
    for (int i = optind; i < argc; i++) {
        Swarm__GetServiceRequest req = SWARM__GET_SERVICE_REQUEST__INIT;
        req.id = argv[i];
        ProtobufCMessage *m = NULL;
        r = ctl_call_object(ctl, "Control.GetService", &req.base,
                            &swarm__service_response__descriptor, "service", argv[i], &m);
        if (r != CALL_OK) {
            code = CLI_EXIT_FAILURE;
            if (r == CALL_FAILED)
                break;
            continue;
        }
        Swarm__ServiceResponse *resp = (Swarm__ServiceResponse *)m;
        if (!resp->service) {
            fprintf(stderr, PROG ": no such service: %s\n", argv[i]);
            code = CLI_EXIT_FAILURE;
        } else if (pretty) {
            if (!first)
                printf("\n");
            service_pretty(resp);
            first = false;
        } else {
            service_json(&j, resp, true);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (!pretty) {
        cli_json_end_array(&j);
        if (cli_json_finish(&j) == -EINVAL)
            code = CLI_EXIT_FAILURE;
    }
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ service ps */

static int task_cmp(const void *a, const void *b)
{
    const Swarm__Task *x = *(Swarm__Task *const *)a;
    const Swarm__Task *y = *(Swarm__Task *const *)b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    int c;
    if (x->slot == 0 && (c = strcmp(x->node_id, y->node_id)) != 0)
        return c;
    bool xr = x->desired_state <= SWARM__TASK_STATE__TASK_RUNNING;
    bool yr = y->desired_state <= SWARM__TASK_STATE__TASK_RUNNING;
    if (xr != yr)
        return xr ? -1 : 1;
    if (x->state_at != y->state_at)
        return x->state_at > y->state_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static bool same_group(const Swarm__Task *x, const Swarm__Task *y)
{
    return x->slot == y->slot && (x->slot != 0 || strcmp(x->node_id, y->node_id) == 0);
}

static const char *node_name(const Swarm__ListNodesResponse *nodes, const char *id)
{
    for (size_t i = 0; nodes && i < nodes->n_nodes; i++)
        if (strcmp(nodes->nodes[i]->id, id) == 0 && nodes->nodes[i]->hostname[0])
            return nodes->nodes[i]->hostname;
    return id;
}

/* One line, whatever the task's error holds. */
static void one_line(const char *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s", s);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

static void task_name(const char *service, const Swarm__Task *t, char *buf, size_t size)
{
    if (t->slot)
        snprintf(buf, size, "%s.%" PRIu64, service, t->slot);
    else
        snprintf(buf, size, "%s.%s", service, t->node_id);
}

static void ps_json(struct cli_json *j, const Swarm__Task *t, const char *service,
                    const Swarm__ListNodesResponse *nodes)
{
    cli_json_begin_object(j);
    cli_json_kv_string(j, "id", t->id);
    cli_json_kv_string(j, "service", service);
    cli_json_kv_string(j, "service_id", t->service_id);
    cli_json_kv_uint(j, "slot", t->slot);
    cli_json_kv_string(j, "node_id", t->node_id);
    cli_json_kv_string(j, "node", t->node_id[0] ? node_name(nodes, t->node_id) : "");
    cli_json_kv_string(j, "desired_state", task_state_str(t->desired_state));
    cli_json_kv_string(j, "state", task_state_str(t->state));
    cli_json_kv_string(j, "message", t->message);
    cli_json_kv_string(j, "error", t->err);
    cli_json_kv_int(j, "pid", t->pid);
    cli_json_kv_int(j, "exit_code", t->exit_code);
    cli_json_kv_uint(j, "spec_version", t->spec_version);
    ctl_json_time(j, "state_at", t->state_at);
    if (t->meta)
        ctl_json_time(j, "created_at", t->meta->created_at);
    cli_json_end_object(j);
}

static int ps_table(const Swarm__ListTasksResponse *resp, const char *service,
                    const Swarm__ListNodesResponse *nodes)
{
    static const char *const headers[] = {"ID",    "NAME", "NODE", "DESIRED STATE", "CURRENT STATE",
                                          "ERROR", "PID"};
    cli_table *tab = NULL;
    uint64_t now = sw_now_realtime_ns();
    int r = cli_table_create(SW_ARRAY_SIZE(headers), headers, &tab);
    for (size_t i = 0; r >= 0 && i < resp->n_tasks; i++) {
        const Swarm__Task *t = resp->tasks[i];
        char name[256], fullname[300], desired[32], state[32], current[128], ago[64], err[256],
            pid[32] = "";
        task_name(service, t, name, sizeof(name));
        if (i > 0 && same_group(resp->tasks[i - 1], t))
            snprintf(fullname, sizeof(fullname), " \\_ %s", name);
        else
            snprintf(fullname, sizeof(fullname), "%s", name);
        title(task_state_str(t->desired_state), desired, sizeof(desired));
        title(task_state_str(t->state), state, sizeof(state));
        if (t->state_at) {
            cli_fmt_ago(t->state_at, now, ago, sizeof(ago));
            ago[0] = (char)(ago[0] >= 'A' && ago[0] <= 'Z' ? ago[0] - 'A' + 'a' : ago[0]);
            snprintf(current, sizeof(current), "%s %s", state, ago);
        } else {
            snprintf(current, sizeof(current), "%s", state);
        }
        /* a pending task's reason (no suitable node ...) comes as its message */
        bool pending = t->state <= SWARM__TASK_STATE__TASK_PENDING;
        one_line(t->err[0] || !pending ? t->err : t->message, err, sizeof(err));
        if (t->pid > 0 && t->state == SWARM__TASK_STATE__TASK_RUNNING)
            snprintf(pid, sizeof(pid), "%" PRId32, t->pid);
        const char *row[] = {t->id,   fullname, t->node_id[0] ? node_name(nodes, t->node_id) : "",
                             desired, current,  err,
                             pid};
        r = cli_table_add_row(tab, row);
    }
    if (r >= 0)
        r = cli_table_print(tab, stdout);
    if (r < 0)
        fprintf(stderr, PROG ": %s\n", strerror(-r));
    cli_table_free(tab);
    return r < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int cmd_service_ps(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "service ps";
    bool quiet = false;
    enum ctl_format format = FORMAT_TABLE;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
            case 'q':
                quiet = true;
                break;
            case 'f':
                r = ctl_parse_format(optarg, true, false, &format, cmd);
                if (r != CLI_EXIT_OK)
                    return r;
                break;
            case 'h':
                return ctl_print_help(help_ps);
            default:
                return ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error(PROG, cmd, "\"swarmctl service ps\" requires exactly 1 argument");
    if (!argv[optind][0])
        return cli_usage_error(PROG, cmd, "a service name must not be empty");
    if (quiet && format == FORMAT_JSON)
        return cli_usage_error(PROG, cmd, "-q and --format json cannot be used together");
    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;

    /* the service first: its name for the NAME column, and a clear "no such service" */
    Swarm__GetServiceRequest greq = SWARM__GET_SERVICE_REQUEST__INIT;
    greq.id = argv[optind];
    ProtobufCMessage *sm = NULL;
    r = ctl_call_object(ctl, "Control.GetService", &greq.base, &swarm__service_response__descriptor,
                        "service", argv[optind], &sm);
    if (r != CALL_OK)
        return CLI_EXIT_FAILURE;
    Swarm__ServiceResponse *sresp = (Swarm__ServiceResponse *)sm;
    if (!sresp->service) {
        fprintf(stderr, PROG ": no such service: %s\n", argv[optind]);
        protobuf_c_message_free_unpacked(sm, NULL);
        return CLI_EXIT_FAILURE;
    }
    Swarm__ListTasksRequest req = SWARM__LIST_TASKS_REQUEST__INIT;
    req.service = sresp->service->id;
    ProtobufCMessage *m = NULL;
    r = ctl_call_object(ctl, "Control.ListTasks", &req.base,
                        &swarm__list_tasks_response__descriptor, NULL, argv[optind], &m);
    if (r != CALL_OK) {
        protobuf_c_message_free_unpacked(sm, NULL);
        return CLI_EXIT_FAILURE;
    }
    Swarm__ListTasksResponse *resp = (Swarm__ListTasksResponse *)m;
    if (resp->n_tasks > 1)
        qsort(resp->tasks, resp->n_tasks, sizeof(resp->tasks[0]), task_cmp);

    /* hostnames for the NODE column; the IDs do when nodes cannot be listed */
    ProtobufCMessage *nm = NULL;
    if (!quiet && resp->n_tasks > 0) {
        Swarm__ListNodesRequest nreq = SWARM__LIST_NODES_REQUEST__INIT;
        int status;
        char error[ERRMSG_SIZE];
        if (ctl_call(ctl, "Control.ListNodes", &nreq.base, &swarm__list_nodes_response__descriptor,
                     &nm, &status, error, sizeof(error)) != CALL_OK)
            nm = NULL;
    }
    const Swarm__ListNodesResponse *nodes = (Swarm__ListNodesResponse *)nm;
    const char *service = sresp->service->name;

    int code = CLI_EXIT_OK;
    if (quiet) {
        for (size_t i = 0; i < resp->n_tasks; i++)
            printf("%s\n", resp->tasks[i]->id);
    } else if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_array(&j);
        for (size_t i = 0; i < resp->n_tasks; i++)
            ps_json(&j, resp->tasks[i], service, nodes);
        cli_json_end_array(&j);
        if (cli_json_finish(&j) == -EINVAL)
            code = CLI_EXIT_FAILURE;
    } else {
        code = ps_table(resp, service, nodes);
    }
    if (nm)
        protobuf_c_message_free_unpacked(nm, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    protobuf_c_message_free_unpacked(sm, NULL);
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ service scale */

static int cmd_service_scale(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "service scale";
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(help_scale);
        return ctl_getopt_usage(c, argv, opts, cmd);
    }
    if (optind >= argc)
        return cli_usage_error(PROG, cmd,
                               "\"swarmctl service scale\" requires at least 1 "
                               "argument");
    for (int i = optind; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        uint64_t n;
        if (!eq || eq == argv[i])
            return cli_usage_error(PROG, cmd,
                                   "invalid scale specifier \"%s\": expected "
                                   "SERVICE=REPLICAS",
                                   argv[i]);
        if (cli_parse_uint(eq + 1, UINT32_MAX, &n) < 0)
            return cli_usage_error(PROG, cmd,
                                   "invalid replicas value in \"%s\": a number, 0 or "
                                   "more",
                                   argv[i]);
    }
    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;

    int code = CLI_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        uint64_t n = 0;
        cli_parse_uint(eq + 1, UINT32_MAX, &n);
        *eq = '\0';
        Swarm__UpdateServiceRequest req = SWARM__UPDATE_SERVICE_REQUEST__INIT;
        req.id = argv[i];
        req.set_replicas = true;
        req.replicas = n;
        ProtobufCMessage *m = NULL;
        r = ctl_call_object(ctl, "Control.UpdateService", &req.base,
                            &swarm__service_response__descriptor, "service", argv[i], &m);
        if (r != CALL_OK) {
            code = CLI_EXIT_FAILURE;
            if (r == CALL_FAILED)
                break;
            continue;
        }
        printf("%s scaled to %" PRIu64 "\n", argv[i], n);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ service update */

/* Index of the "--" that ends update's options (argc if none): words that are arguments of
 * options are skipped, so "--env --" does not count. */
static int find_dashdash(int argc, char **argv, const struct option *opts, const char *shortopts)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            return i;
        if (a[0] != '-' || a[1] == '\0')
            continue;
        if (a[1] == '-') {
            size_t len = strcspn(a + 2, "=");
            if (a[2 + len] == '=')
                continue;
            const struct option *match = NULL;
            for (const struct option *o = opts; o->name; o++) {
                if (strncmp(o->name, a + 2, len) != 0)
                    continue;
                match = o;
                if (strlen(o->name) == len)
                    break;
            }
            if (match && match->has_arg == required_argument)
                i++;
            continue;
        }
        for (const char *p = a + 1; *p; p++) {
            const char *s = strchr(shortopts, *p);
            if (s && *p != ':' && s[1] == ':') {
                if (p[1] == '\0')
                    i++;
                break;
            }
        }
    }
    return argc;
}

static int cmd_service_update(struct ctl *ctl, int argc, char **argv)
{
    enum { OPT_REPLICAS = 0x100 };
    static const struct option opts[] = {
        CTL_SPEC_LONGOPTS,
        {"replicas", required_argument, NULL, OPT_REPLICAS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "service update";
    _cleanup_(ctl_spec_finish) struct ctl_spec spec;
    ctl_spec_init(&spec);
    bool set_replicas = false;
    uint64_t replicas = 0;
    int c, r = CLI_EXIT_OK;

    int split = find_dashdash(argc, argv, opts, ":h" CTL_SPEC_SHORTOPTS);
    optind = 0;
    while (r == CLI_EXIT_OK &&
           (c = getopt_long(split, argv, ":h" CTL_SPEC_SHORTOPTS, opts, NULL)) != -1) {
        switch (c) {
            case OPT_REPLICAS:
                if (cli_parse_uint(optarg, UINT32_MAX, &replicas) < 0)
                    r = cli_usage_error(PROG, cmd,
                                        "invalid --replicas \"%s\": a number of tasks, 0 or more",
                                        optarg);
                set_replicas = true;
                break;
            case 'h':
                return ctl_print_help(help_update_head) + ctl_print_help(ctl_spec_help);
            default:
                r = ctl_spec_option(&spec, c, optarg, cmd);
                if (r == -1)
                    r = ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (r != CLI_EXIT_OK)
        return r;
    if (split - optind != 1)
        return cli_usage_error(PROG, cmd,
                               "\"swarmctl service update\" requires exactly 1 argument (a "
                               "command goes after --)");
    const char *id = argv[optind];
    if (!id[0])
        return cli_usage_error(PROG, cmd, "a service name must not be empty");
    if (split < argc) {
        r = ctl_spec_set_command(&spec, argc - split - 1, argv + split + 1, cmd);
        if (r != CLI_EXIT_OK)
            return r;
    }
    if (!set_replicas && ctl_spec_empty(&spec))
        return cli_usage_error(PROG, cmd,
                               "nothing to update: give --replicas, a task flag or "
                               "-- COMMAND");
    r = ctl_spec_check(&spec, cmd);
    if (r == CLI_EXIT_OK)
        r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;

    Swarm__UpdateServiceRequest req = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    req.id = (char *)id;
    req.set_replicas = set_replicas;
    req.replicas = replicas;
    ProtobufCMessage *cur = NULL;
    Swarm__TaskSpec task;
    if (!ctl_spec_empty(&spec)) {
        /* the flags replace their part of the current spec */
        Swarm__GetServiceRequest greq = SWARM__GET_SERVICE_REQUEST__INIT;
        greq.id = (char *)id;
        r = ctl_call_object(ctl, "Control.GetService", &greq.base,
                            &swarm__service_response__descriptor, "service", id, &cur);
        if (r != CALL_OK)
            return CLI_EXIT_FAILURE;
        const Swarm__ServiceResponse *cr = (Swarm__ServiceResponse *)cur;
        if (cr->service && cr->service->task) {
            task = *cr->service->task; /* shallow: the pointers stay cur's */
        } else {
            swarm__task_spec__init(&task);
        }
        ctl_spec_apply(&spec, &task);
        req.task = &task;
        /* by ID from here on, so a name cannot point at another service meanwhile */
        if (cr->service && cr->service->id[0])
            req.id = cr->service->id;
    }
    ProtobufCMessage *m = NULL;
    r = ctl_call_object(ctl, "Control.UpdateService", &req.base,
                        &swarm__service_response__descriptor, "service", id, &m);
    if (cur)
        protobuf_c_message_free_unpacked(cur, NULL);
    if (r != CALL_OK)
        return CLI_EXIT_FAILURE;
    printf("%s\n", id);
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(CLI_EXIT_OK);
}

/* ------------------------------------------------------------------ service rm */

static int cmd_service_rm(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "service rm";
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(help_rm);
        return ctl_getopt_usage(c, argv, opts, cmd);
    }
    if (optind >= argc)
        return cli_usage_error(PROG, cmd, "\"swarmctl service rm\" requires at least 1 argument");
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, cmd, "a service name must not be empty");
    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    return ctl_remove_each(ctl, argv + optind, argc - optind, "Control.RemoveService",
                           &swarm__get_service_request__descriptor, false, "service");
}

/* ------------------------------------------------------------------ service */

int ctl_cmd_service(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(help_service);
        return ctl_getopt_usage(c, argv, opts, "service");
    }
    if (optind >= argc)
        return cli_usage_error(PROG, "service", "\"swarmctl service\" requires a command");
    const char *sub = argv[optind];
    argc -= optind;
    argv += optind;
    if (strcmp(sub, "create") == 0)
        return cmd_service_create(ctl, argc, argv);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_service_ls(ctl, argc, argv);
    if (strcmp(sub, "inspect") == 0)
        return cmd_service_inspect(ctl, argc, argv);
    if (strcmp(sub, "ps") == 0)
        return cmd_service_ps(ctl, argc, argv);
    if (strcmp(sub, "scale") == 0)
        return cmd_service_scale(ctl, argc, argv);
    if (strcmp(sub, "update") == 0)
        return cmd_service_update(ctl, argc, argv);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return cmd_service_rm(ctl, argc, argv);
    return cli_usage_error(PROG, "service", "unknown command \"service %s\"", sub);
}
