/* swarmctl node ls|inspect|update|rm: node tables, JSON, the human-readable view, and the
 * operator's changes (availability, labels, removal). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/swarmctl.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "proto/swarm.pb-c.h"

/* A node renews at a random point between 50% and 80% of its certificate's validity (the
 * agent's rule), or at once when asked (node update --force-rotate-cert, ca --rotate). */
static void renewal_window(const Swarm__NodeCertificate *c, uint64_t *from, uint64_t *to)
{
    uint64_t span = c->not_after > c->not_before ? c->not_after - c->not_before : 0;
    *from = c->not_before + span / 2;
    *to = c->not_before + span / 2 + span / 10 * 3;
}

static const char help_node[] =
    "Usage:  swarmctl node COMMAND\n"
    "\n"
    "Manage swarm nodes\n"
    "\n"
    "Commands:\n"
    "  demote      Demote one or more managers to workers\n"
    "  inspect     Display detailed information on one or more nodes\n"
    "  ls          List nodes in the swarm\n"
    "  promote     Promote one or more workers to managers\n"
    "  rm          Remove one or more nodes from the swarm\n"
    "  update      Update a node's availability, labels or role\n"
    "\n"
    "Options:\n"
    "  -h, --help  Print usage\n"
    "\n"
    "Run 'swarmctl node COMMAND --help' for more information on a command.\n";

static const char help_node_ls[] =
    "Usage:  swarmctl node ls [OPTIONS]\n"
    "\n"
    "List nodes in the swarm\n"
    "\n"
    "Aliases:\n"
    "  ls, list\n"
    "\n"
    "Options:\n"
    "      --format string   Output format: table (default) or json (an array of objects)\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display node IDs\n";

static const char help_node_inspect[] =
    "Usage:  swarmctl node inspect [OPTIONS] NODE [NODE...]\n"
    "\n"
    "Display detailed information on one or more nodes (by ID, unique ID prefix or\n"
    "hostname), as a JSON array unless --pretty is given\n"
    "\n"
    "Options:\n"
    "  -h, --help     Print usage\n"
    "      --pretty   Print the information in a human friendly format\n";

static const char help_node_update[] =
    "Usage:  swarmctl node update [OPTIONS] NODE\n"
    "\n"
    "Update a node (by ID, unique ID prefix or hostname): a drained node's tasks move to\n"
    "other nodes, a paused node keeps its tasks but gets no new ones\n"
    "\n"
    "Options:\n"
    "      --allow-rejoin[=false]  The node (a worker, down) may join again keeping its\n"
    "                              ID: 'swarmd join --rejoin' in its state dir, with a\n"
    "                              worker token (after a root CA rotation it missed, or\n"
    "                              once its certificate expired); a root CA rotation no\n"
    "                              longer waits for it. =false withdraws it (it also ends\n"
    "                              when the node is back in session)\n"
    "      --availability string   active, pause or drain\n"
    "      --force-rotate-cert     The node renews its certificate now (a new key, the\n"
    "                              cluster's current --cert-expiry)\n"
    "  -h, --help                  Print usage\n"
    "      --label-add K=V         Add or update a node label (repeatable)\n"
    "      --label-rm K            Remove a node label (repeatable)\n"
    "      --role string           manager (promote) or worker (demote)\n";

static const char help_node_rm[] =
    "Usage:  swarmctl node rm [OPTIONS] NODE [NODE...]\n"
    "\n"
    "Remove one or more nodes from the swarm (by ID, unique ID prefix or hostname): its\n"
    "certificate is refused from then on, its connections are closed and its tasks are\n"
    "replaced elsewhere. A node that is not down needs --force; a manager is never removed\n"
    "\n"
    "Aliases:\n"
    "  rm, remove\n"
    "\n"
    "Options:\n"
    "  -f, --force   Force remove a node that is still Ready\n"
    "  -h, --help    Print usage\n";

static const char *role_str(Swarm__NodeRole role, bool title)
{
    if (role == SWARM__NODE_ROLE__ROLE_MANAGER)
        return title ? "Manager" : "manager";
    if (role == SWARM__NODE_ROLE__ROLE_WORKER)
        return title ? "Worker" : "worker";
    return title ? "Unknown" : "unknown";
}

static const char *state_str(Swarm__NodeState s, bool title)
{
    switch (s) {
        case SWARM__NODE_STATE__NODE_READY:
            return title ? "Ready" : "ready";
        case SWARM__NODE_STATE__NODE_DOWN:
            return title ? "Down" : "down";
        case SWARM__NODE_STATE__NODE_DISCONNECTED:
            return title ? "Disconnected" : "disconnected";
        default:
            return title ? "Unknown" : "unknown";
    }
}

static const char *availability_str(Swarm__NodeAvailability a, bool title)
{
    switch (a) {
        case SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE:
            return title ? "Active" : "active";
        case SWARM__NODE_AVAILABILITY__AVAILABILITY_PAUSE:
            return title ? "Pause" : "pause";
        case SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN:
            return title ? "Drain" : "drain";
        default:
            return title ? "Unknown" : "unknown";
    }
}

static const char *reachability_str(Swarm__Reachability r, bool title)
{
    switch (r) {
        case SWARM__REACHABILITY__REACH_REACHABLE:
            return title ? "Reachable" : "reachable";
        case SWARM__REACHABILITY__REACH_UNREACHABLE:
            return title ? "Unreachable" : "unreachable";
        default:
            return title ? "Unknown" : "unknown";
    }
}

/* "Leader", "Reachable", "Unreachable" for managers; "" for workers. */
static const char *manager_status_str(const Swarm__Node *n, bool title)
{
    if (n->role != SWARM__NODE_ROLE__ROLE_MANAGER)
        return "";
    if (!n->manager_status)
        return title ? "Unknown" : "unknown";
    if (n->manager_status->leader)
        return title ? "Leader" : "leader";
    return reachability_str(n->manager_status->reachability, title);
}

static int node_cmp(const void *a, const void *b)
{
    const Swarm__Node *x = *(Swarm__Node *const *)a;
    const Swarm__Node *y = *(Swarm__Node *const *)b;
    int c = strcmp(x->hostname, y->hostname);
    return c ? c : strcmp(x->id, y->id);
}

static void node_json(struct cli_json *j, const Swarm__Node *n, bool full)
{
    cli_json_begin_object(j);
    cli_json_kv_string(j, "id", n->id);
    if (full && n->meta)
        cli_json_kv_uint(j, "version", n->meta->version);
    if (n->meta) {
        ctl_json_time(j, "created_at", n->meta->created_at);
        ctl_json_time(j, "updated_at", n->meta->updated_at);
    }
    cli_json_kv_string(j, "hostname", n->hostname);
    cli_json_kv_string(j, "role", role_str(n->role, false));
    if (full)
        cli_json_kv_string(j, "desired_role", role_str(n->desired_role, false));
    cli_json_kv_string(j, "status", state_str(n->state, false));
    if (full)
        cli_json_kv_string(j, "status_message", n->state_message);
    cli_json_kv_string(j, "availability", availability_str(n->availability, false));
    if (n->rejoin_allowed) /* node update --allow-rejoin */
        cli_json_kv_bool(j, "rejoin_allowed", true);
    cli_json_kv_string(j, "manager_status", manager_status_str(n, false));
    cli_json_kv_string(j, "addr", n->addr);
    if (full) {
        cli_json_key(j, "labels");
        cli_json_begin_object(j);
        for (size_t i = 0; i < n->n_labels; i++)
            cli_json_kv_string(j, n->labels[i]->key, n->labels[i]->value);
        cli_json_end_object(j);
        cli_json_kv_string(j, "os", n->os);
        cli_json_kv_string(j, "arch", n->arch);
        cli_json_kv_string(j, "runtime_error", n->runtime_error);
        if (n->resources) {
            cli_json_key(j, "resources");
            cli_json_begin_object(j);
            cli_json_kv_int(j, "nano_cpus", n->resources->nano_cpus);
            cli_json_kv_int(j, "memory_bytes", n->resources->memory_bytes);
            cli_json_end_object(j);
        }
        if (n->manager_status) {
            const Swarm__ManagerStatus *m = n->manager_status;
            cli_json_key(j, "manager");
            cli_json_begin_object(j);
            cli_json_kv_uint(j, "raft_id", m->raft_id);
            cli_json_kv_string(j, "addr", m->addr);
            cli_json_kv_bool(j, "leader", m->leader);
            cli_json_kv_string(j, "reachability", reachability_str(m->reachability, false));
            cli_json_end_object(j);
        }
    }
    if (n->certificate) {
        const Swarm__NodeCertificate *c = n->certificate;
        cli_json_key(j, "certificate");
        cli_json_begin_object(j);
        cli_json_kv_string(j, "issuer", c->issuer);
        cli_json_kv_string(j, "serial", c->serial);
        ctl_json_time(j, "not_before", c->not_before);
        ctl_json_time(j, "not_after", c->not_after);
        uint64_t from, to;
        renewal_window(c, &from, &to);
        ctl_json_time(j, "renewal_due_from", from);
        ctl_json_time(j, "renewal_due_to", to);
        cli_json_kv_bool(j, "renewal_asked", n->cert_rotate > n->cert_rotated);
        cli_json_kv_string(j, "authority_key_id", c->authority_key_id ? c->authority_key_id : "");
        if (full)
            cli_json_kv_string(j, "pem", c->cert_pem);
        cli_json_end_object(j);
    }
    cli_json_end_object(j);
}

/* Docker's units.BytesSize: "%.4g" of the largest binary unit. */
static void fmt_bytes(int64_t v, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double d = (double)v;
    size_t u = 0;
    while (d >= 1024.0 && u + 1 < SW_ARRAY_SIZE(units)) {
        d /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.4g%s", d, units[u]);
}

static void node_pretty(const Swarm__Node *n)
{
    char t[64];
    printf("ID:\t\t\t%s\n", n->id);
    printf("Hostname:\t\t%s\n", n->hostname);
    if (n->meta) {
        ctl_fmt_time(n->meta->created_at, t, sizeof(t));
        printf("Joined at:\t\t%s\n", t);
    }
    if (n->n_labels) {
        printf("Labels:\n");
        for (size_t i = 0; i < n->n_labels; i++)
            printf(" - %s=%s\n", n->labels[i]->key, n->labels[i]->value);
    }
    printf("Status:\n");
    printf(" State:\t\t\t%s\n", state_str(n->state, true));
    if (n->state_message[0])
        printf(" Message:\t\t%s\n", n->state_message);
    printf(" Availability:\t\t%s\n", availability_str(n->availability, true));
    printf(" Address:\t\t%s\n", n->addr);
    printf(" Role:\t\t\t%s\n", role_str(n->role, true));
    if (n->role == SWARM__NODE_ROLE__ROLE_MANAGER) {
        printf("Manager Status:\n");
        if (n->manager_status) {
            printf(" Address:\t\t%s\n", n->manager_status->addr);
            printf(" Raft Status:\t\t%s\n",
                   reachability_str(n->manager_status->reachability, true));
            printf(" Leader:\t\t%s\n", n->manager_status->leader ? "Yes" : "No");
        } else {
            printf(" Raft Status:\t\tUnknown\n");
        }
    }
    if (n->runtime_error[0])
        printf("Cannot run tasks:\t%s\n", n->runtime_error);
    printf("Platform:\n");
    printf(" Operating System:\t%s\n", n->os);
    printf(" Architecture:\t\t%s\n", n->arch);
    if (n->resources) {
        printf("Resources:\n");
        printf(" CPUs:\t\t\t%g\n", (double)n->resources->nano_cpus / 1e9);
        fmt_bytes(n->resources->memory_bytes, t, sizeof(t));
        printf(" Memory:\t\t%s\n", t);
    }
    if (n->certificate) {
        printf("TLS Info:\n");
        printf(" Issuer:\t\t%s\n", n->certificate->issuer);
        printf(" Serial:\t\t%s\n", n->certificate->serial);
        ctl_fmt_time(n->certificate->not_before, t, sizeof(t));
        printf(" Not Before:\t\t%s\n", t);
        ctl_fmt_time(n->certificate->not_after, t, sizeof(t));
        printf(" Not After:\t\t%s\n", t);
        uint64_t from, to;
        char t2[64];
        renewal_window(n->certificate, &from, &to);
        ctl_fmt_time(from, t, sizeof(t));
        ctl_fmt_time(to, t2, sizeof(t2));
        printf(" Renewal Due:\t\tbetween %s and %s%s\n", t, t2,
               n->cert_rotate > n->cert_rotated ? " (asked for now)" : "");
        if (n->certificate->authority_key_id && n->certificate->authority_key_id[0])
            printf(" Authority Key ID:\t%s\n", n->certificate->authority_key_id);
        if (n->rejoin_allowed)
            printf(" Rejoin:\t\tallowed (swarmd join --rejoin keeps node ID %s)\n", n->id);
    }
}

/* ------------------------------------------------------------------ node ls */

static int cmd_node_ls(struct ctl *ctl, int argc, char **argv)
{
    Swarm__ListNodesRequest req = SWARM__LIST_NODES_REQUEST__INIT;
    const struct ctl_query q = {
        .cmd = "node ls",
        .help = help_node_ls,
        .allow_table = true,
        .format = FORMAT_TABLE,
        .method = "Control.ListNodes",
        .req = &req.base,
        .desc = &swarm__list_nodes_response__descriptor,
    };
    bool quiet;
    enum ctl_format format;
    ProtobufCMessage *m;
    int r = ctl_query(ctl, &q, argc, argv, &quiet, &format, &m);
    if (r != CLI_EXIT_OK || !m)
        return r;
    Swarm__ListNodesResponse *resp = (Swarm__ListNodesResponse *)m;
    if (resp->n_nodes > 1)
        qsort(resp->nodes, resp->n_nodes, sizeof(resp->nodes[0]), node_cmp);

    int code = CLI_EXIT_OK;
    if (quiet) {
        for (size_t i = 0; i < resp->n_nodes; i++)
            printf("%s\n", resp->nodes[i]->id);
    } else if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_array(&j);
        for (size_t i = 0; i < resp->n_nodes; i++)
            node_json(&j, resp->nodes[i], false);
        cli_json_end_array(&j);
        if (cli_json_finish(&j) == -EINVAL)
            code = CLI_EXIT_FAILURE;
    } else {
        static const char *const headers[] = {"ID",           "HOSTNAME",       "STATUS",
                                              "AVAILABILITY", "MANAGER STATUS", "ADDR"};
        cli_table *t = NULL;
        r = cli_table_create(SW_ARRAY_SIZE(headers), headers, &t);
        for (size_t i = 0; r >= 0 && i < resp->n_nodes; i++) {
            const Swarm__Node *n = resp->nodes[i];
            const char *row[] = {n->id,
                                 n->hostname,
                                 state_str(n->state, true),
                                 availability_str(n->availability, true),
                                 manager_status_str(n, true),
                                 n->addr};
            r = cli_table_add_row(t, row);
        }
        if (r >= 0)
            cli_table_print(t, stdout);
        else
            fprintf(stderr, PROG ": %s\n", strerror(-r));
        if (r < 0)
            code = CLI_EXIT_FAILURE;
        cli_table_free(t);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ node inspect */

static int cmd_node_inspect(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool pretty = false;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case 'p':
                pretty = true;
                break;
            case 'h':
                return ctl_print_help(help_node_inspect);
            default:
                return ctl_getopt_usage(c, argv, opts, "node inspect");
        }
    }
    if (optind >= argc)
        return cli_usage_error(PROG, "node inspect",
                               "\"swarmctl node inspect\" requires at least 1 argument");
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, "node inspect", "a node name must not be empty");

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
        Swarm__GetNodeRequest req = SWARM__GET_NODE_REQUEST__INIT;
        req.id = argv[i];
        ProtobufCMessage *m = NULL;
        int status = 0;
        char error[ERRMSG_SIZE];
        r = ctl_call(ctl, "Control.GetNode", &req.base, &swarm__get_node_response__descriptor, &m,
                     &status, error, sizeof(error));
        if (r == CALL_FAILED) {
            code = CLI_EXIT_FAILURE;
            break;
        }
        if (r == CALL_SERVER_ERROR) {
            if (status == -ENOENT)
                fprintf(stderr, PROG ": no such node: %s\n", argv[i]);
            else
                fprintf(stderr, PROG ": %s\n", error);
            code = CLI_EXIT_FAILURE;
            continue;
        }
        Swarm__GetNodeResponse *resp = (Swarm__GetNodeResponse *)m;
        if (!resp->node) {
            fprintf(stderr, PROG ": no such node: %s\n", argv[i]);
            code = CLI_EXIT_FAILURE;
        } else if (pretty) {
            if (!first)
                printf("\n");
            node_pretty(resp->node);
            first = false;
        } else {
            node_json(&j, resp->node, true);
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

/* ------------------------------------------------------------------ node update */

static int cmd_node_update(struct ctl *ctl, int argc, char **argv)
{
    enum {
        OPT_AVAILABILITY = 0x100,
        OPT_LABEL_ADD,
        OPT_LABEL_RM,
        OPT_ROTATE,
        OPT_ROLE,
        OPT_REJOIN
    };
    static const struct option opts[] = {
        {"allow-rejoin", optional_argument, NULL, OPT_REJOIN},
        {"availability", required_argument, NULL, OPT_AVAILABILITY},
        {"role", required_argument, NULL, OPT_ROLE},
        {"force-rotate-cert", no_argument, NULL, OPT_ROTATE},
        {"label-add", required_argument, NULL, OPT_LABEL_ADD},
        {"label-rm", required_argument, NULL, OPT_LABEL_RM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const availabilities[] = {"active", "pause", "drain"};
    static const Swarm__NodeAvailability avail_values[] = {
        SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE,
        SWARM__NODE_AVAILABILITY__AVAILABILITY_PAUSE,
        SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN,
    };
    const char *cmd = "node update";
    Swarm__UpdateNodeRequest req = SWARM__UPDATE_NODE_REQUEST__INIT;
    struct ctl_label_edit le = {0};
    int c, r = CLI_EXIT_OK;

    optind = 0;
    while (r == CLI_EXIT_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_AVAILABILITY: {
                int a = cli_parse_choice(optarg, availabilities, SW_ARRAY_SIZE(availabilities));
                if (a < 0) {
                    r = cli_usage_error(
                        PROG, cmd, "invalid --availability \"%s\": active, pause or drain", optarg);
                    break;
                }
                req.set_availability = true;
                req.availability = avail_values[a];
                break;
            }
            case OPT_ROTATE:
                req.force_rotate_cert = true;
                break;
            case OPT_REJOIN:
                if (!optarg || strcmp(optarg, "true") == 0)
                    req.allow_rejoin = true;
                else if (strcmp(optarg, "false") == 0)
                    req.deny_rejoin = true;
                else
                    r = cli_usage_error(PROG, cmd, "invalid --allow-rejoin=\"%s\": true or false",
                                        optarg);
                break;
            case OPT_ROLE:
                if (strcmp(optarg, "manager") == 0)
                    req.role = SWARM__NODE_ROLE__ROLE_MANAGER;
                else if (strcmp(optarg, "worker") == 0)
                    req.role = SWARM__NODE_ROLE__ROLE_WORKER;
                else
                    r = cli_usage_error(PROG, cmd, "invalid --role \"%s\": manager or worker",
                                        optarg);
                req.set_role = true;
                break;
            case OPT_LABEL_ADD:
                r = ctl_label_edit_add(&le, optarg, cmd);
                break;
            case OPT_LABEL_RM:
                r = ctl_label_edit_rm(&le, optarg, cmd);
                break;
            case 'h':
                ctl_label_edit_free(&le);
                return ctl_print_help(help_node_update);
            default:
                r = ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (r == CLI_EXIT_OK && argc - optind != 1)
        r = cli_usage_error(PROG, cmd, "\"swarmctl node update\" requires exactly 1 argument");
    if (r == CLI_EXIT_OK && !argv[optind][0])
        r = cli_usage_error(PROG, cmd, "a node name must not be empty");
    if (r == CLI_EXIT_OK && !req.set_availability && !req.force_rotate_cert && !req.set_role &&
        !req.allow_rejoin && !req.deny_rejoin && le.n_add == 0 && le.n_rm == 0)
        r = cli_usage_error(PROG, cmd,
                            "nothing to update: give --availability, --label-add, --label-rm, "
                            "--role, --force-rotate-cert or --allow-rejoin");
    if (r == CLI_EXIT_OK && req.allow_rejoin && (req.set_role || req.force_rotate_cert))
        r = cli_usage_error(PROG, cmd,
                            "--allow-rejoin goes without --role and --force-rotate-cert");
    if (r == CLI_EXIT_OK)
        r = ctl_label_edit_check(&le, cmd);
    if (r == CLI_EXIT_OK)
        r = ctl_connect(ctl);
    if (r == CLI_EXIT_OK) {
        req.id = argv[optind];
        req.label_add = le.add;
        req.n_label_add = le.n_add;
        req.label_rm = le.rm;
        req.n_label_rm = le.n_rm;
        ProtobufCMessage *m = NULL;
        if (ctl_call_object(ctl, "Control.UpdateNode", &req.base,
                            &swarm__get_node_response__descriptor, "node", argv[optind],
                            &m) == CALL_OK) {
            printf("%s\n", argv[optind]);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            r = CLI_EXIT_FAILURE;
        }
    }
    ctl_label_edit_free(&le);
    return ctl_finish_output(r);
}

/* ------------------------------------------------------------------ promote, demote */

static const char help_node_promote[] =
    "Usage:  swarmctl node promote NODE [NODE...]\n"
    "\n"
    "Promote workers to managers: each renews into a manager certificate, joins raft and\n"
    "becomes a voter once caught up\n"
    "\n"
    "Options:\n"
    "  -h, --help   Print usage\n";

static const char help_node_demote[] =
    "Usage:  swarmctl node demote NODE [NODE...]\n"
    "\n"
    "Demote managers to workers: each leaves raft first (refused for the last manager or if\n"
    "the managers left could not form a quorum), then runs as a worker\n"
    "\n"
    "Options:\n"
    "  -h, --help   Print usage\n";

static int cmd_node_role(struct ctl *ctl, int argc, char **argv, bool promote)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = promote ? "node promote" : "node demote";
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(promote ? help_node_promote : help_node_demote);
        return ctl_getopt_usage(c, argv, opts, cmd);
    }
    if (optind >= argc)
        return cli_usage_error(PROG, cmd, "\"swarmctl %s\" requires at least 1 argument", cmd);
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, cmd, "a node name must not be empty");
    int r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    int code = CLI_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        Swarm__UpdateNodeRequest req = SWARM__UPDATE_NODE_REQUEST__INIT;
        req.id = argv[i];
        req.set_role = true;
        req.role = promote ? SWARM__NODE_ROLE__ROLE_MANAGER : SWARM__NODE_ROLE__ROLE_WORKER;
        ProtobufCMessage *m = NULL;
        r = ctl_call_object(ctl, "Control.UpdateNode", &req.base,
                            &swarm__get_node_response__descriptor, "node", argv[i], &m);
        if (r != CALL_OK) {
            code = CLI_EXIT_FAILURE;
            if (r == CALL_FAILED)
                break;
            continue;
        }
        printf("Node %s %s.\n", argv[i],
               promote ? "promoted to a manager in the swarm" : "demoted in the swarm");
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ node rm */

static int cmd_node_rm(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "node rm";
    bool force = false;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
        switch (c) {
            case 'f':
                force = true;
                break;
            case 'h':
                return ctl_print_help(help_node_rm);
            default:
                return ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (argc - optind < 1)
        return cli_usage_error(PROG, cmd, "\"swarmctl node rm\" requires at least 1 argument");
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, cmd, "a node name must not be empty");
    int r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    return ctl_remove_each(ctl, argv + optind, argc - optind, "Control.RemoveNode",
                           &swarm__remove_node_request__descriptor, force, "node");
}

/* ------------------------------------------------------------------ node */

int ctl_cmd_node(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(help_node);
        return ctl_getopt_usage(c, argv, opts, "node");
    }
    if (optind >= argc)
        return cli_usage_error(PROG, "node", "\"swarmctl node\" requires a command");
    const char *sub = argv[optind];
    argc -= optind;
    argv += optind;
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_node_ls(ctl, argc, argv);
    if (strcmp(sub, "inspect") == 0)
        return cmd_node_inspect(ctl, argc, argv);
    if (strcmp(sub, "update") == 0)
        return cmd_node_update(ctl, argc, argv);
    if (strcmp(sub, "promote") == 0)
        return cmd_node_role(ctl, argc, argv, true);
    if (strcmp(sub, "demote") == 0)
        return cmd_node_role(ctl, argc, argv, false);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return cmd_node_rm(ctl, argc, argv);
    return cli_usage_error(PROG, "node", "unknown command \"node %s\"", sub);
}
