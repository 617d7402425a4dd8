/* swarmctl: the operator CLI; talks to the local manager's control socket. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cmd/cli.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "config.h"
#include "net/rpc.h"
#include "proto/frame.h"
#include "proto/swarm.pb-c.h"

#define PROG "swarmctl"
#define DEFAULT_HOST "unix:///var/lib/swarmd/swarmd.sock"
#define CONNECT_TIMEOUT_MS 10000
#define ERRMSG_SIZE 256

struct ctl {
    const char *host; /* -H, or NULL */
    const char *socket_path;
    net_sync *conn;
};

enum ctl_format { FORMAT_DEFAULT = 0, FORMAT_TABLE, FORMAT_JSON, FORMAT_PRETTY };

/* ------------------------------------------------------------------ help texts */

static const char help_main[] =
    "Usage:  swarmctl [OPTIONS] COMMAND\n"
    "\n"
    "Control a swarmd cluster through the local manager's control socket.\n"
    "\n"
    "Options:\n"
    "  -H, --host string   Daemon socket to connect to: unix://PATH (default\n"
    "                      \"" DEFAULT_HOST
    "\",\n"
    "                      or the SWARM_HOST environment variable)\n"
    "  -h, --help          Print usage\n"
    "  -v, --version       Print version information and quit\n"
    "\n"
    "Management Commands:\n"
    "  cluster     Manage the swarm\n"
    "  node        Manage swarm nodes\n"
    "\n"
    "Commands:\n"
    "  join-token  Manage join tokens\n"
    "\n"
    "Run 'swarmctl COMMAND --help' for more information on a command.\n";

static const char help_node[] =
    "Usage:  swarmctl node COMMAND\n"
    "\n"
    "Manage swarm nodes\n"
    "\n"
    "Commands:\n"
    "  inspect     Display detailed information on one or more nodes\n"
    "  ls          List nodes in the swarm\n"
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

static const char help_join_token[] =
    "Usage:  swarmctl join-token [OPTIONS] (worker|manager)\n"
    "\n"
    "Print the command that joins a new worker or manager to the swarm\n"
    "\n"
    "Options:\n"
    "  -h, --help     Print usage\n"
    "  -q, --quiet    Only display the token\n"
    "      --rotate   Rotate the join token (the old one stops working)\n";

static const char help_cluster[] =
    "Usage:  swarmctl cluster COMMAND\n"
    "\n"
    "Manage the swarm\n"
    "\n"
    "Commands:\n"
    "  inspect     Display the cluster's settings, CA and token digests\n"
    "\n"
    "Options:\n"
    "  -h, --help  Print usage\n"
    "\n"
    "Run 'swarmctl cluster COMMAND --help' for more information on a command.\n";

static const char help_cluster_inspect[] =
    "Usage:  swarmctl cluster inspect [OPTIONS]\n"
    "\n"
    "Display the cluster's settings, root CA digest and join token digests (never the\n"
    "tokens themselves)\n"
    "\n"
    "Options:\n"
    "      --format string   Output format: pretty (default) or json\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display the cluster ID\n";

static int print_help(const char *text)
{
    fputs(text, stdout);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ option parsing */

/* Report what getopt_long rejected as a usage error of cmd. */
static int getopt_usage(int c, char *const *argv, const struct option *opts, const char *cmd)
{
    char msg[256];
    cli_getopt_error(c, argv, opts, msg, sizeof(msg));
    return cli_usage_error(PROG, cmd, "%s", msg);
}

static int parse_format(const char *value,
                        bool allow_table,
                        bool allow_pretty,
                        enum ctl_format *ret,
                        const char *cmd)
{
    if (allow_table && strcmp(value, "table") == 0)
        *ret = FORMAT_TABLE;
    else if (allow_pretty && strcmp(value, "pretty") == 0)
        *ret = FORMAT_PRETTY;
    else if (strcmp(value, "json") == 0)
        *ret = FORMAT_JSON;
    else
        return cli_usage_error(PROG, cmd, "invalid --format value \"%s\": expected %s or json",
                               value, allow_table ? "table" : "pretty");
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ connection */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Resolve the host and connect. Returns an exit code (0 on success). */
static int ctl_connect(struct ctl *ctl)
{
    const char *host = ctl->host;
    const char *what = "-H";
    if (!host) {
        const char *env = getenv("SWARM_HOST");
        if (env && env[0]) {
            host = env;
            what = "SWARM_HOST";
        } else {
            host = DEFAULT_HOST;
        }
    }
    if (has_prefix(host, "tcp://"))
        return cli_usage_error(
            PROG, NULL, "%s %s: tcp:// hosts are not supported yet; use unix://PATH", what, host);
    if (!has_prefix(host, "unix://"))
        return cli_usage_error(PROG, NULL, "%s %s: invalid host, expected unix://PATH", what, host);
    const char *path = host + strlen("unix://");
    if (path[0] != '/')
        return cli_usage_error(PROG, NULL,
                               "%s %s: the socket path must be absolute (unix:///path/to.sock)",
                               what, host);
    if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return cli_usage_error(PROG, NULL, "%s %s: the socket path is too long", what, host);
    ctl->socket_path = path;

    char errmsg[ERRMSG_SIZE] = "";
    int r = net_sync_connect_unix(path, CONNECT_TIMEOUT_MS, &ctl->conn, errmsg, sizeof(errmsg));
    if (r >= 0)
        return CLI_EXIT_OK;
    switch (-r) {
        case ENOENT:
            fprintf(stderr,
                    PROG
                    ": cannot connect to swarmd: socket %s does not exist; is swarmd running? "
                    "(start it with 'swarmd init', or point -H/SWARM_HOST at its socket)\n",
                    path);
            break;
        case ECONNREFUSED:
            fprintf(stderr,
                    PROG
                    ": cannot connect to swarmd at %s: connection refused; is swarmd running? "
                    "(start it with 'swarmd --state-dir DIR')\n",
                    path);
            break;
        case EACCES:
        case EPERM:
            fprintf(stderr,
                    PROG
                    ": cannot connect to swarmd at %s: permission denied; the control socket is "
                    "mode 0600, run swarmctl as the user that runs swarmd (usually root)\n",
                    path);
            break;
        case ETIMEDOUT:
            fprintf(stderr,
                    PROG
                    ": cannot connect to swarmd at %s: no answer within %d s; is swarmd "
                    "stuck or overloaded?\n",
                    path, CONNECT_TIMEOUT_MS / 1000);
            break;
        default:
            fprintf(stderr, PROG ": cannot connect to swarmd at %s: %s\n", path,
                    errmsg[0] ? errmsg : strerror(-r));
    }
    return CLI_EXIT_FAILURE;
}

static void ctl_close(struct ctl *ctl)
{
    if (ctl->conn)
        net_sync_close(ctl->conn);
    ctl->conn = NULL;
}

enum { CALL_OK = 0, CALL_SERVER_ERROR = 1, CALL_FAILED = -1 };

/* One unary call. CALL_OK: *ret_resp (free with protobuf_c_message_free_unpacked).
 * CALL_SERVER_ERROR: *ret_status and error hold the server's answer. CALL_FAILED: a
 * message was already printed. */
static int ctl_call(struct ctl *ctl,
                    const char *method,
                    const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc,
                    ProtobufCMessage **ret_resp,
                    int *ret_status,
                    char *error,
                    size_t error_size)
{
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(req, &buf, &len);
    if (r < 0) {
        fprintf(stderr, PROG ": cannot encode the request: %s\n", strerror(-r));
        return CALL_FAILED;
    }
    int status = 0;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    error[0] = '\0';
    r = net_sync_call(ctl->conn, method, buf, len, &status, error, error_size, &payload,
                      &payload_len);
    if (r < 0) {
        if (error[0])
            fprintf(stderr, PROG ": %s call failed: %s\n", method, error);
        else
            fprintf(stderr, PROG ": %s call to %s failed: %s\n", method, ctl->socket_path,
                    strerror(-r));
        return CALL_FAILED;
    }
    if (status != 0) {
        if (!error[0])
            snprintf(error, error_size, "%s", strerror(status < 0 ? -status : status));
        *ret_status = status;
        sw_erase(payload, payload_len);
        free(payload);
        return CALL_SERVER_ERROR;
    }
    static const uint8_t empty[1];
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, NULL, payload_len, payload ? payload : empty);
    /* responses may carry a join token: do not leave it in freed memory */
    sw_erase(payload, payload_len);
    free(payload);
    if (!m) {
        fprintf(stderr,
                PROG
                ": swarmd sent a %s answer that does not decode; are swarmctl and swarmd "
                "the same version?\n",
                method);
        return CALL_FAILED;
    }
    *ret_resp = m;
    return CALL_OK;
}

/* Exit code for a call that did not return CALL_OK. */
static int call_failure(int r, const char *error)
{
    if (r == CALL_SERVER_ERROR)
        fprintf(stderr, PROG ": %s\n", error);
    return CLI_EXIT_FAILURE;
}

/* Finish stdout; a write error (full disk, closed pipe) is a failure. */
static int finish_output(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, PROG ": cannot write the output: %s\n", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return code;
}

/* ------------------------------------------------------------------ formatting */

static void fmt_time(uint64_t ns, char *buf, size_t size)
{
    if (ns == 0)
        snprintf(buf, size, "-");
    else
        sw_time_format(ns, buf, size);
}

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

static void json_time(struct cli_json *j, const char *key, uint64_t ns)
{
    char buf[64];
    if (ns == 0)
        return;
    sw_time_format(ns, buf, sizeof(buf));
    cli_json_kv_string(j, key, buf);
}

static void node_json(struct cli_json *j, const Swarm__Node *n, bool full)
{
    cli_json_begin_object(j);
    cli_json_kv_string(j, "id", n->id);
    if (full && n->meta)
        cli_json_kv_uint(j, "version", n->meta->version);
    if (n->meta) {
        json_time(j, "created_at", n->meta->created_at);
        json_time(j, "updated_at", n->meta->updated_at);
    }
    cli_json_kv_string(j, "hostname", n->hostname);
    cli_json_kv_string(j, "role", role_str(n->role, false));
    if (full)
        cli_json_kv_string(j, "desired_role", role_str(n->desired_role, false));
    cli_json_kv_string(j, "status", state_str(n->state, false));
    if (full)
        cli_json_kv_string(j, "status_message", n->state_message);
    cli_json_kv_string(j, "availability", availability_str(n->availability, false));
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
        json_time(j, "not_before", c->not_before);
        json_time(j, "not_after", c->not_after);
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
        fmt_time(n->meta->created_at, t, sizeof(t));
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
        fmt_time(n->certificate->not_before, t, sizeof(t));
        printf(" Not Before:\t\t%s\n", t);
        fmt_time(n->certificate->not_after, t, sizeof(t));
        printf(" Not After:\t\t%s\n", t);
    }
}

/* ------------------------------------------------------------------ node ls */

static int cmd_node_ls(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
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
                r = parse_format(optarg, true, false, &format, "node ls");
                if (r != CLI_EXIT_OK)
                    return r;
                break;
            case 'h':
                return print_help(help_node_ls);
            default:
                return getopt_usage(c, argv, opts, "node ls");
        }
    }
    if (optind < argc)
        return cli_usage_error(PROG, "node ls", "\"swarmctl node ls\" accepts no arguments");
    if (quiet && format == FORMAT_JSON)
        return cli_usage_error(PROG, "node ls", "-q and --format json cannot be used together");

    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    Swarm__ListNodesRequest req = SWARM__LIST_NODES_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, "Control.ListNodes", &req.base, &swarm__list_nodes_response__descriptor, &m,
                 &status, error, sizeof(error));
    if (r != CALL_OK)
        return call_failure(r, error);
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
    return finish_output(code);
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
                return print_help(help_node_inspect);
            default:
                return getopt_usage(c, argv, opts, "node inspect");
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
    return finish_output(code);
}

/* ------------------------------------------------------------------ node */

static int cmd_node(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h')
            return print_help(help_node);
        return getopt_usage(c, argv, opts, "node");
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
    return cli_usage_error(PROG, "node", "unknown command \"node %s\"", sub);
}

/* ------------------------------------------------------------------ join-token */

static int cmd_join_token(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"rotate", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const roles[] = {"worker", "manager"};
    bool quiet = false, rotate = false;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
            case 'q':
                quiet = true;
                break;
            case 'r':
                rotate = true;
                break;
            case 'h':
                return print_help(help_join_token);
            default:
                return getopt_usage(c, argv, opts, "join-token");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error(PROG, "join-token",
                               "\"swarmctl join-token\" requires exactly 1 argument: worker or "
                               "manager");
    int role = cli_parse_choice(argv[optind], roles, SW_ARRAY_SIZE(roles));
    if (role < 0)
        return cli_usage_error(PROG, "join-token",
                               "unknown role \"%s\": expected worker or manager", argv[optind]);

    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    Swarm__GetJoinTokenRequest req = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    req.role = role == 1 ? SWARM__NODE_ROLE__ROLE_MANAGER : SWARM__NODE_ROLE__ROLE_WORKER;
    req.rotate = rotate;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, "Control.GetJoinToken", &req.base,
                 &swarm__get_join_token_response__descriptor, &m, &status, error, sizeof(error));
    if (r != CALL_OK)
        return call_failure(r, error);
    Swarm__GetJoinTokenResponse *resp = (Swarm__GetJoinTokenResponse *)m;
    int code = CLI_EXIT_OK;
    if (!resp->token[0]) {
        fprintf(stderr, PROG ": swarmd returned an empty %s join token\n", roles[role]);
        code = CLI_EXIT_FAILURE;
    } else if (quiet) {
        printf("%s\n", resp->token);
    } else {
        if (rotate)
            printf("Successfully rotated %s join token.\n\n", roles[role]);
        printf("To add a %s to this swarm, run the following command:\n\n", roles[role]);
        if (resp->manager_addr[0])
            printf("    swarmd join %s %s\n\n", resp->token, resp->manager_addr);
        else
            printf("    swarmd join %s\n\n", resp->token);
    }
    sw_erase(resp->token, strlen(resp->token));
    protobuf_c_message_free_unpacked(m, NULL);
    return finish_output(code);
}

/* ------------------------------------------------------------------ cluster inspect */

/* Digests come as hex; show them as "sha256:<hex>". */
static void fmt_digest(const char *hex, char *buf, size_t size)
{
    if (!hex[0] || has_prefix(hex, "sha256:"))
        snprintf(buf, size, "%s", hex);
    else
        snprintf(buf, size, "sha256:%s", hex);
}

/* Wipe whatever secret the server should have stripped but did not. */
static void cluster_wipe_secrets(Swarm__Cluster *cl)
{
    if (cl->root_ca && cl->root_ca->ca_key_pem.data)
        sw_erase(cl->root_ca->ca_key_pem.data, cl->root_ca->ca_key_pem.len);
    if (cl->join_tokens) {
        sw_erase(cl->join_tokens->worker, strlen(cl->join_tokens->worker));
        sw_erase(cl->join_tokens->manager, strlen(cl->join_tokens->manager));
    }
}

static void cluster_print(const Swarm__GetClusterResponse *resp, enum ctl_format format, int *code)
{
    const Swarm__Cluster *cl = resp->cluster;
    static Swarm__ClusterSpec empty_spec = SWARM__CLUSTER_SPEC__INIT;
    const Swarm__ClusterSpec *spec = cl->spec ? cl->spec : &empty_spec;
    const char *ca_digest = cl->root_ca ? cl->root_ca->digest : "";
    char expiry[64], heartbeat[64], wdigest[128], mdigest[128];
    sw_duration_format(spec->cert_expiry_ns, expiry, sizeof(expiry));
    sw_duration_format(spec->heartbeat_period_ns, heartbeat, sizeof(heartbeat));
    fmt_digest(resp->worker_token_digest, wdigest, sizeof(wdigest));
    fmt_digest(resp->manager_token_digest, mdigest, sizeof(mdigest));

    if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_object(&j);
        cli_json_kv_string(&j, "id", cl->id);
        cli_json_kv_string(&j, "name", spec->name);
        if (cl->meta) {
            cli_json_kv_uint(&j, "version", cl->meta->version);
            json_time(&j, "created_at", cl->meta->created_at);
            json_time(&j, "updated_at", cl->meta->updated_at);
        }
        cli_json_kv_string(&j, "root_ca_digest", ca_digest);
        json_time(&j, "ca_cert_not_after", resp->ca_cert_not_after);
        cli_json_kv_string(&j, "node_cert_expiry", expiry);
        cli_json_kv_string(&j, "heartbeat_period", heartbeat);
        cli_json_kv_uint(&j, "snapshot_interval", spec->snapshot_interval);
        cli_json_kv_bool(&j, "autolock", spec->autolock);
        cli_json_kv_uint(&j, "task_history_limit", spec->task_history_limit);
        cli_json_kv_string(&j, "worker_token_digest", wdigest);
        cli_json_kv_string(&j, "manager_token_digest", mdigest);
        cli_json_end_object(&j);
        if (cli_json_finish(&j) == -EINVAL)
            *code = CLI_EXIT_FAILURE;
        return;
    }
    char created[64], ca_expiry[64];
    fmt_time(cl->meta ? cl->meta->created_at : 0, created, sizeof(created));
    fmt_time(resp->ca_cert_not_after, ca_expiry, sizeof(ca_expiry));
    printf("ID:                       %s\n", cl->id);
    printf("Name:                     %s\n", spec->name);
    printf("Created:                  %s\n", created);
    printf("Root CA digest:           %s\n", ca_digest);
    printf("CA certificate expiry:    %s\n", ca_expiry);
    printf("Node certificate expiry:  %s\n", expiry);
    printf("Heartbeat period:         %s\n", heartbeat);
    printf("Snapshot interval:        %" PRIu64 "\n", spec->snapshot_interval);
    printf("Task history limit:       %" PRIu32 "\n", spec->task_history_limit);
    printf("Autolock:                 %s\n", spec->autolock ? "true" : "false");
    printf("Worker token digest:      %s\n", wdigest);
    printf("Manager token digest:     %s\n", mdigest);
}

static int cmd_cluster_inspect(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false;
    enum ctl_format format = FORMAT_PRETTY;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
            case 'q':
                quiet = true;
                break;
            case 'f':
                r = parse_format(optarg, false, true, &format, "cluster inspect");
                if (r != CLI_EXIT_OK)
                    return r;
                break;
            case 'h':
                return print_help(help_cluster_inspect);
            default:
                return getopt_usage(c, argv, opts, "cluster inspect");
        }
    }
    if (optind < argc)
        return cli_usage_error(PROG, "cluster inspect",
                               "\"swarmctl cluster inspect\" accepts no arguments");
    if (quiet && format == FORMAT_JSON)
        return cli_usage_error(PROG, "cluster inspect",
                               "-q and --format json cannot be used together");

    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, "Control.GetCluster", &req.base, &swarm__get_cluster_response__descriptor, &m,
                 &status, error, sizeof(error));
    if (r != CALL_OK)
        return call_failure(r, error);
    Swarm__GetClusterResponse *resp = (Swarm__GetClusterResponse *)m;
    int code = CLI_EXIT_OK;
    if (!resp->cluster) {
        fprintf(stderr, PROG ": swarmd returned no cluster; is this node part of a swarm?\n");
        code = CLI_EXIT_FAILURE;
    } else {
        cluster_wipe_secrets(resp->cluster);
        if (quiet)
            printf("%s\n", resp->cluster->id);
        else
            cluster_print(resp, format, &code);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return finish_output(code);
}

static int cmd_cluster(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h')
            return print_help(help_cluster);
        return getopt_usage(c, argv, opts, "cluster");
    }
    if (optind >= argc)
        return cli_usage_error(PROG, "cluster", "\"swarmctl cluster\" requires a command");
    const char *sub = argv[optind];
    if (strcmp(sub, "inspect") == 0)
        return cmd_cluster_inspect(ctl, argc - optind, argv + optind);
    return cli_usage_error(PROG, "cluster", "unknown command \"cluster %s\"", sub);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    struct ctl ctl = {0};
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "+:H:hv", opts, NULL)) != -1) {
        switch (c) {
            case 'H':
                ctl.host = optarg;
                break;
            case 'h':
                return finish_output(print_help(help_main));
            case 'v':
                printf(PROG " version %s\n", SWARMD_VERSION);
                return finish_output(CLI_EXIT_OK);
            default:
                return getopt_usage(c, argv, opts, NULL);
        }
    }
    if (optind >= argc)
        return cli_usage_error(PROG, NULL, "missing command");

    const char *cmd = argv[optind];
    argc -= optind;
    argv += optind;
    int code;
    if (strcmp(cmd, "node") == 0)
        code = cmd_node(&ctl, argc, argv);
    else if (strcmp(cmd, "join-token") == 0)
        code = cmd_join_token(&ctl, argc, argv);
    else if (strcmp(cmd, "cluster") == 0)
        code = cmd_cluster(&ctl, argc, argv);
    else
        code = cli_usage_error(PROG, NULL, "unknown command \"%s\"", cmd);
    ctl_close(&ctl);
    return finish_output(code);
}
