/* swarmctl: the operator CLI; talks to the local manager's control socket. Command
 * dispatch, the connection, join-token and cluster; node, service and secret commands in
 * swarmctl-node.c, swarmctl-service.c (task-spec flags in swarmctl-spec.c) and
 * swarmctl-secret.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cmd/cli.h"
#include "cmd/swarmctl.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "config.h"
#include "net/rpc.h"
#include "proto/frame.h"
#include "proto/swarm.pb-c.h"

#define DEFAULT_HOST "unix:///var/lib/swarmd/swarmd.sock"
#define CONNECT_TIMEOUT_MS 10000

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
    "  secret      Manage secrets\n"
    "  service     Manage services\n"
    "\n"
    "Commands:\n"
    "  ca          Display the root CA certificate\n"
    "  join-token  Manage join tokens\n"
    "  unlock-key  Manage the unlock key (autolock)\n"
    "\n"
    "Run 'swarmctl COMMAND --help' for more information on a command.\n";

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
    "  update      Change the swarm's settings (certificates, heartbeat, snapshots, autolock)\n"
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

static const char help_cluster_update[] =
    "Usage:  swarmctl cluster update [OPTIONS]\n"
    "\n"
    "Change the swarm's settings\n"
    "\n"
    "Options:\n"
    "      --cert-expiry duration        Validity of node certificates issued from now on\n"
    "                                    (at least 1h)\n"
    "      --heartbeat-period duration   Period of node heartbeats (100ms to 24h); nodes\n"
    "                                    get it with their next heartbeat answer\n"
    "      --autolock[=true|false]       Lock the managers' keys under an unlock key, printed\n"
    "                                    once; a restarted manager then waits for\n"
    "                                    'swarmd unlock' (false: keys in clear again)\n"
    "      --rotate-data-key             Seal what is written from now on under a new data\n"
    "                                    key (every manager must be reachable); the old key\n"
    "                                    goes once a snapshot supersedes it\n"
    "      --snapshot-interval N         Raft entries between snapshots of the store on\n"
    "                                    each manager (10 to 10000000)\n"
    "  -h, --help                        Print usage\n";

int ctl_print_help(const char *text)
{
    fputs(text, stdout);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ option parsing */

/* Report what getopt_long rejected as a usage error of cmd. */
int ctl_getopt_usage(int c, char *const *argv, const struct option *opts, const char *cmd)
{
    char msg[256];
    cli_getopt_error(c, argv, opts, msg, sizeof(msg));
    return cli_usage_error(PROG, cmd, "%s", msg);
}

int ctl_parse_format(const char *value, bool allow_table, bool allow_pretty, enum ctl_format *ret,
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
int ctl_connect(struct ctl *ctl)
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

void ctl_close(struct ctl *ctl)
{
    if (ctl->conn)
        net_sync_close(ctl->conn);
    ctl->conn = NULL;
}

int ctl_call(struct ctl *ctl, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_resp, int *ret_status,
             char *error, size_t error_size)
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
    /* requests may carry secret data: do not leave it in freed memory */
    sw_erase(buf, len);
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

int ctl_query(struct ctl *ctl, const struct ctl_query *q, int argc, char **argv, bool *ret_quiet,
              enum ctl_format *ret_format, ProtobufCMessage **ret_resp)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false;
    enum ctl_format format = q->format;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
            case 'q':
                quiet = true;
                break;
            case 'f':
                r = ctl_parse_format(optarg, q->allow_table, q->allow_pretty, &format, q->cmd);
                if (r != CLI_EXIT_OK)
                    return r;
                break;
            case 'h':
                *ret_resp = NULL;
                return ctl_print_help(q->help);
            default:
                return ctl_getopt_usage(c, argv, opts, q->cmd);
        }
    }
    if (optind < argc)
        return cli_usage_error(PROG, q->cmd, "\"" PROG " %s\" accepts no arguments", q->cmd);
    if (quiet && format == FORMAT_JSON)
        return cli_usage_error(PROG, q->cmd, "-q and --format json cannot be used together");

    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, q->method, q->req, q->desc, &m, &status, error, sizeof(error));
    if (r != CALL_OK)
        return ctl_call_failure(r, error);
    *ret_quiet = quiet;
    *ret_format = format;
    *ret_resp = m;
    return CLI_EXIT_OK;
}

int ctl_call_object(struct ctl *ctl, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, const char *kind, const char *name,
                    ProtobufCMessage **ret_resp)
{
    int status = 0;
    char error[ERRMSG_SIZE];
    int r = ctl_call(ctl, method, req, desc, ret_resp, &status, error, sizeof(error));
    if (r == CALL_SERVER_ERROR) {
        if (kind && status == -ENOENT)
            fprintf(stderr, PROG ": no such %s: %s\n", kind, name);
        else
            fprintf(stderr, PROG ": %s\n", error);
    }
    return r;
}

int ctl_remove_each(struct ctl *ctl, char **names, int n, const char *method,
                    const ProtobufCMessageDescriptor *req_desc, bool force, const char *kind)
{
    const ProtobufCFieldDescriptor *id_f =
        protobuf_c_message_descriptor_get_field_by_name(req_desc, "id");
    const ProtobufCFieldDescriptor *force_f =
        force ? protobuf_c_message_descriptor_get_field_by_name(req_desc, "force") : NULL;
    ProtobufCMessage *req = calloc(1, req_desc->sizeof_message);
    if (!req || !id_f || (force && !force_f)) {
        free(req);
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    req_desc->message_init(req);
    if (force_f)
        *(protobuf_c_boolean *)((char *)req + force_f->offset) = 1;
    int code = CLI_EXIT_OK;
    for (int i = 0; i < n; i++) {
        *(char **)((char *)req + id_f->offset) = names[i];
        ProtobufCMessage *m = NULL;
        int r = ctl_call_object(ctl, method, req, &swarm__empty__descriptor, kind, names[i], &m);
        if (r != CALL_OK) {
            code = CLI_EXIT_FAILURE;
            if (r == CALL_FAILED)
                break;
            continue;
        }
        printf("%s\n", names[i]);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    free(req); /* its id pointed at argv: nothing else to free */
    return ctl_finish_output(code);
}

int ctl_parse_label(const char *arg, const char *flag, const char *cmd, Swarm__Label **ret)
{
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (klen == 0)
        return cli_usage_error(PROG, cmd, "invalid %s \"%s\": expected KEY=VALUE", flag, arg);
    for (size_t i = 0; i < klen; i++)
        if (arg[i] == ' ' || arg[i] == '\t' || arg[i] == '\n')
            return cli_usage_error(PROG, cmd, "invalid %s \"%s\": the key has a space", flag, arg);
    Swarm__Label *l = malloc(sizeof(*l));
    if (!l) {
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    swarm__label__init(l);
    l->key = strndup(arg, klen);
    l->value = strdup(eq ? eq + 1 : "");
    if (!l->key || !l->value) {
        ctl_label_free(l);
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    *ret = l;
    return CLI_EXIT_OK;
}

void ctl_label_free(Swarm__Label *l)
{
    if (!l)
        return;
    if (l->key != protobuf_c_empty_string)
        free(l->key);
    if (l->value != protobuf_c_empty_string)
        free(l->value);
    free(l);
}

void ctl_labels_free(Swarm__Label **labels, size_t n)
{
    for (size_t i = 0; labels && i < n; i++)
        ctl_label_free(labels[i]);
    free(labels);
}

int ctl_label_edit_add(struct ctl_label_edit *e, const char *arg, const char *cmd)
{
    Swarm__Label *l = NULL;
    int r = ctl_parse_label(arg, "--label-add", cmd, &l);
    if (r != CLI_EXIT_OK)
        return r;
    Swarm__Label **n = realloc(e->add, (e->n_add + 1) * sizeof(*n));
    if (!n) {
        ctl_label_free(l);
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    e->add = n;
    e->add[e->n_add++] = l;
    return CLI_EXIT_OK;
}

int ctl_label_edit_rm(struct ctl_label_edit *e, const char *arg, const char *cmd)
{
    if (!arg[0] || strchr(arg, '='))
        return cli_usage_error(PROG, cmd, "invalid --label-rm \"%s\": a label key", arg);
    if (e->n_rm == e->cap_rm) {
        size_t cap = e->cap_rm ? e->cap_rm * 2 : 4;
        char **n = realloc(e->rm, cap * sizeof(*n));
        if (!n) {
            fprintf(stderr, PROG ": out of memory\n");
            return CLI_EXIT_FAILURE;
        }
        e->rm = n;
        e->cap_rm = cap;
    }
    e->rm[e->n_rm++] = (char *)arg;
    return CLI_EXIT_OK;
}

int ctl_label_edit_check(const struct ctl_label_edit *e, const char *cmd)
{
    for (size_t i = 0; i < e->n_rm; i++)
        for (size_t k = 0; k < e->n_add; k++)
            if (strcmp(e->rm[i], e->add[k]->key) == 0)
                return cli_usage_error(PROG, cmd, "label %s is both added and removed", e->rm[i]);
    return CLI_EXIT_OK;
}

void ctl_label_edit_free(struct ctl_label_edit *e)
{
    ctl_labels_free(e->add, e->n_add);
    free(e->rm);
    memset(e, 0, sizeof(*e));
}

void ctl_json_labels(struct cli_json *j, const char *key, Swarm__Label *const *l, size_t n)
{
    cli_json_key(j, key);
    cli_json_begin_object(j);
    for (size_t i = 0; i < n; i++)
        cli_json_kv_string(j, l[i]->key, l[i]->value);
    cli_json_end_object(j);
}

/* Exit code for a call that did not return CALL_OK. */
int ctl_call_failure(int r, const char *error)
{
    if (r == CALL_SERVER_ERROR)
        fprintf(stderr, PROG ": %s\n", error);
    return CLI_EXIT_FAILURE;
}

/* Finish stdout; a write error (full disk, closed pipe) is a failure. */
int ctl_finish_output(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, PROG ": cannot write the output: %s\n", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return code;
}

/* ------------------------------------------------------------------ formatting */

void ctl_fmt_time(uint64_t ns, char *buf, size_t size)
{
    if (ns == 0)
        snprintf(buf, size, "-");
    else
        sw_time_format(ns, buf, size);
}

void ctl_json_time(struct cli_json *j, const char *key, uint64_t ns)
{
    char buf[64];
    if (ns == 0)
        return;
    sw_time_format(ns, buf, sizeof(buf));
    cli_json_kv_string(j, key, buf);
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
                return ctl_print_help(help_join_token);
            default:
                return ctl_getopt_usage(c, argv, opts, "join-token");
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
        return ctl_call_failure(r, error);
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
    return ctl_finish_output(code);
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
            ctl_json_time(&j, "created_at", cl->meta->created_at);
            ctl_json_time(&j, "updated_at", cl->meta->updated_at);
        }
        cli_json_kv_string(&j, "root_ca_digest", ca_digest);
        ctl_json_time(&j, "ca_cert_not_after", resp->ca_cert_not_after);
        cli_json_kv_string(&j, "node_cert_expiry", expiry);
        cli_json_kv_string(&j, "heartbeat_period", heartbeat);
        cli_json_kv_uint(&j, "snapshot_interval", spec->snapshot_interval);
        cli_json_kv_bool(&j, "autolock", spec->autolock);
        cli_json_kv_uint(&j, "data_key_id", cl->data_key_id);
        cli_json_kv_uint(&j, "task_history_limit", spec->task_history_limit);
        cli_json_kv_string(&j, "worker_token_digest", wdigest);
        cli_json_kv_string(&j, "manager_token_digest", mdigest);
        cli_json_end_object(&j);
        if (cli_json_finish(&j) == -EINVAL)
            *code = CLI_EXIT_FAILURE;
        return;
    }
    char created[64], ca_expiry[64];
    ctl_fmt_time(cl->meta ? cl->meta->created_at : 0, created, sizeof(created));
    ctl_fmt_time(resp->ca_cert_not_after, ca_expiry, sizeof(ca_expiry));
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
    if (cl->data_key_id)
        printf("Data key:                 %08" PRIx32 " (rotated)\n", cl->data_key_id);
    printf("Worker token digest:      %s\n", wdigest);
    printf("Manager token digest:     %s\n", mdigest);
}

static int cmd_cluster_inspect(struct ctl *ctl, int argc, char **argv)
{
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    const struct ctl_query q = {
        .cmd = "cluster inspect",
        .help = help_cluster_inspect,
        .allow_pretty = true,
        .format = FORMAT_PRETTY,
        .method = "Control.GetCluster",
        .req = &req.base,
        .desc = &swarm__get_cluster_response__descriptor,
    };
    bool quiet;
    enum ctl_format format;
    ProtobufCMessage *m;
    int r = ctl_query(ctl, &q, argc, argv, &quiet, &format, &m);
    if (r != CLI_EXIT_OK || !m)
        return r;
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
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ cluster update */

static int cmd_cluster_update(struct ctl *ctl, int argc, char **argv)
{
    enum { OPT_CERT_EXPIRY = 0x100, OPT_HEARTBEAT, OPT_SNAPSHOT, OPT_AUTOLOCK, OPT_ROTATE_DEK };
    static const char *const bools[] = {"false", "true"};
    static const struct option opts[] = {
        {"autolock", optional_argument, NULL, OPT_AUTOLOCK},
        {"rotate-data-key", no_argument, NULL, OPT_ROTATE_DEK},
        {"cert-expiry", required_argument, NULL, OPT_CERT_EXPIRY},
        {"snapshot-interval", required_argument, NULL, OPT_SNAPSHOT},
        {"heartbeat-period", required_argument, NULL, OPT_HEARTBEAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "cluster update";
    Swarm__UpdateClusterRequest req = SWARM__UPDATE_CLUSTER_REQUEST__INIT;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_CERT_EXPIRY:
                if (sw_duration_parse(optarg, &req.cert_expiry_ns) < 0)
                    return cli_usage_error(
                        PROG, cmd, "invalid --cert-expiry \"%s\": a duration such as 720h", optarg);
                if (req.cert_expiry_ns < 3600 * SW_NSEC_PER_SEC)
                    return cli_usage_error(PROG, cmd, "--cert-expiry must be at least 1h");
                req.set_cert_expiry = true;
                break;
            case OPT_HEARTBEAT:
                if (sw_duration_parse(optarg, &req.heartbeat_period_ns) < 0 ||
                    req.heartbeat_period_ns < 100 * SW_NSEC_PER_MSEC ||
                    req.heartbeat_period_ns > 24 * 3600 * SW_NSEC_PER_SEC)
                    return cli_usage_error(PROG, cmd,
                                           "invalid --heartbeat-period \"%s\": a duration from "
                                           "100ms to 24h",
                                           optarg);
                req.set_heartbeat_period = true;
                break;
            case OPT_SNAPSHOT:
                if (cli_parse_uint(optarg, 10000000, &req.snapshot_interval) < 0 ||
                    req.snapshot_interval < 10)
                    return cli_usage_error(PROG, cmd,
                                           "invalid --snapshot-interval \"%s\": a number of raft "
                                           "entries from 10 to 10000000",
                                           optarg);
                req.set_snapshot_interval = true;
                break;
            case OPT_ROTATE_DEK:
                req.rotate_data_key = true;
                break;
            case OPT_AUTOLOCK: {
                int v = optarg ? cli_parse_choice(optarg, bools, SW_ARRAY_SIZE(bools)) : 1;
                if (v < 0)
                    return cli_usage_error(PROG, cmd, "invalid --autolock \"%s\": true or false",
                                           optarg);
                req.set_autolock = true;
                req.autolock = v == 1;
                break;
            }
            case 'h':
                return ctl_print_help(help_cluster_update);
            default:
                return ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (optind < argc)
        return cli_usage_error(PROG, cmd, "\"swarmctl cluster update\" accepts no arguments");
    bool settings = req.set_cert_expiry || req.set_heartbeat_period || req.set_snapshot_interval ||
                    req.set_autolock;
    if (!settings && !req.rotate_data_key)
        return cli_usage_error(PROG, cmd,
                               "nothing to update: give --autolock, --cert-expiry, "
                               "--heartbeat-period, --snapshot-interval or --rotate-data-key");
    if (settings && req.rotate_data_key)
        return cli_usage_error(PROG, cmd, "--rotate-data-key goes alone, not with other settings");
    int r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, "Control.UpdateCluster", &req.base, &swarm__get_cluster_response__descriptor,
                 &m, &status, error, sizeof(error));
    if (r != CALL_OK)
        return ctl_call_failure(r, error);
    Swarm__GetClusterResponse *resp = (Swarm__GetClusterResponse *)m;
    if (resp->cluster)
        cluster_wipe_secrets(resp->cluster);
    if (resp->unlock_key[0]) {
        printf(
            "Swarm updated.\n"
            "To unlock a swarm manager after it restarts, run 'swarmd unlock' and provide "
            "this key:\n\n    %s\n\n"
            "Keep it in a password manager: without it a restarted manager cannot start.\n",
            resp->unlock_key);
        sw_erase(resp->unlock_key, strlen(resp->unlock_key));
    } else {
        printf("%s\n", resp->cluster ? resp->cluster->id : "");
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(CLI_EXIT_OK);
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
            return ctl_print_help(help_cluster);
        return ctl_getopt_usage(c, argv, opts, "cluster");
    }
    if (optind >= argc)
        return cli_usage_error(PROG, "cluster", "\"swarmctl cluster\" requires a command");
    const char *sub = argv[optind];
    if (strcmp(sub, "inspect") == 0)
        return cmd_cluster_inspect(ctl, argc - optind, argv + optind);
    if (strcmp(sub, "update") == 0)
        return cmd_cluster_update(ctl, argc - optind, argv + optind);
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
                return ctl_finish_output(ctl_print_help(help_main));
            case 'v':
                printf(PROG " version %s\n", SWARMD_VERSION);
                return ctl_finish_output(CLI_EXIT_OK);
            default:
                return ctl_getopt_usage(c, argv, opts, NULL);
        }
    }
    if (optind >= argc)
        return cli_usage_error(PROG, NULL, "missing command");

    const char *cmd = argv[optind];
    argc -= optind;
    argv += optind;
    int code;
    if (strcmp(cmd, "node") == 0)
        code = ctl_cmd_node(&ctl, argc, argv);
    else if (strcmp(cmd, "service") == 0)
        code = ctl_cmd_service(&ctl, argc, argv);
    else if (strcmp(cmd, "secret") == 0)
        code = ctl_cmd_secret(&ctl, argc, argv);
    else if (strcmp(cmd, "join-token") == 0)
        code = cmd_join_token(&ctl, argc, argv);
    else if (strcmp(cmd, "cluster") == 0)
        code = cmd_cluster(&ctl, argc, argv);
    else if (strcmp(cmd, "unlock-key") == 0)
        code = ctl_cmd_unlock_key(&ctl, argc, argv);
    else if (strcmp(cmd, "ca") == 0)
        code = ctl_cmd_ca(&ctl, argc, argv);
    else
        code = cli_usage_error(PROG, NULL, "unknown command \"%s\"", cmd);
    ctl_close(&ctl);
    return ctl_finish_output(code);
}
