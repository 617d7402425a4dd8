/* swarmctl internals shared by its command files: the connection and output helpers. */
#pragma once

#include <getopt.h>
#include <stdint.h>

#include "cmd/cli.h"
#include "net/rpc.h"
#include "proto/swarm.pb-c.h"

#define PROG "swarmctl"
#define ERRMSG_SIZE 256

struct ctl {
    const char *host; /* -H, or NULL */
    const char *socket_path;
    net_sync *conn;
};

enum ctl_format { FORMAT_DEFAULT = 0, FORMAT_TABLE, FORMAT_JSON, FORMAT_PRETTY };

enum { CALL_OK = 0, CALL_SERVER_ERROR = 1, CALL_FAILED = -1 };

/* Print a help text on stdout; CLI_EXIT_OK. */
int ctl_print_help(const char *text);
/* Report what getopt_long rejected as a usage error of cmd; CLI_EXIT_USAGE. */
int ctl_getopt_usage(int c, char *const *argv, const struct option *opts, const char *cmd);
/* --format VALUE: json, plus table and/or pretty when allowed; an exit code. */
int ctl_parse_format(const char *value, bool allow_table, bool allow_pretty, enum ctl_format *ret,
                     const char *cmd);

/* Resolve -H / SWARM_HOST / the default and connect; an exit code (0 when connected),
 * after printing one line on failure. */
int ctl_connect(struct ctl *ctl);
void ctl_close(struct ctl *ctl);
/* One unary call. CALL_OK: *ret_resp (free with protobuf_c_message_free_unpacked).
 * CALL_SERVER_ERROR: *ret_status and error hold the server's answer. CALL_FAILED: a
 * message was already printed. */
int ctl_call(struct ctl *ctl, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_resp, int *ret_status,
             char *error, size_t error_size);
/* A read command without arguments (node ls, cluster inspect): -q, --format, --help, then
 * connect and one call. */
struct ctl_query {
    const char *cmd; /* "node ls" */
    const char *help;
    bool allow_table, allow_pretty; /* --format values besides json */
    enum ctl_format format;         /* without --format */
    const char *method;
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *desc; /* of the response */
};
/* Parse argv for q and make the call. CLI_EXIT_OK with *ret_resp (free with
 * protobuf_c_message_free_unpacked), or CLI_EXIT_OK with *ret_resp NULL after --help;
 * any other exit code after a usage, connection or call error was printed. */
int ctl_query(struct ctl *ctl, const struct ctl_query *q, int argc, char **argv, bool *ret_quiet,
              enum ctl_format *ret_format, ProtobufCMessage **ret_resp);
/* Exit code for a call that did not return CALL_OK (prints the server's error). */
int ctl_call_failure(int r, const char *error);
/* Flush stdout; a write error turns code into a failure. */
int ctl_finish_output(int code);

/* RFC 3339, or "-" for 0. */
void ctl_fmt_time(uint64_t ns, char *buf, size_t size);
/* key: RFC 3339 time, omitted for 0. */
void ctl_json_time(struct cli_json *j, const char *key, uint64_t ns);

/* swarmctl node ... (swarmctl-node.c) */
int ctl_cmd_node(struct ctl *ctl, int argc, char **argv);

/* ctl_call on one named object. On a server error prints "no such KIND: NAME" for
 * -ENOENT when kind is not NULL, else the server's error line. CALL_OK with *ret_resp,
 * CALL_SERVER_ERROR or CALL_FAILED after printing. */
int ctl_call_object(struct ctl *ctl, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, const char *kind, const char *name,
                    ProtobufCMessage **ret_resp);
/* The rm commands: method once per name with a request of type req_desc whose string
 * field "id" is the name (and, when force is set, whose bool field "force" is true).
 * Prints each name removed; a refused one makes the exit 1 and the rest go on; a broken
 * connection stops. The caller has connected. */
int ctl_remove_each(struct ctl *ctl, char **names, int n, const char *method,
                    const ProtobufCMessageDescriptor *req_desc, bool force, const char *kind);
/* Labels given as K=V or K (empty value); a usage error names flag. */
int ctl_parse_label(const char *arg, const char *flag, const char *cmd, Swarm__Label **ret);
void ctl_label_free(Swarm__Label *l);
/* Each label, then the array. */
void ctl_labels_free(Swarm__Label **labels, size_t n);
/* --label-add K=V and --label-rm K, as node update and secret update take them. */
struct ctl_label_edit {
    Swarm__Label **add;
    size_t n_add;
    char **rm; /* argv strings, not owned */
    size_t n_rm;
    size_t cap_rm;
};
/* A --label-add or --label-rm value (CLI_EXIT_* result; a usage error says what is wrong). */
int ctl_label_edit_add(struct ctl_label_edit *e, const char *arg, const char *cmd);
int ctl_label_edit_rm(struct ctl_label_edit *e, const char *arg, const char *cmd);
/* A usage error for a key both added and removed. */
int ctl_label_edit_check(const struct ctl_label_edit *e, const char *cmd);
void ctl_label_edit_free(struct ctl_label_edit *e);
/* key: an object of the labels. */
void ctl_json_labels(struct cli_json *j, const char *key, Swarm__Label *const *l, size_t n);

/* swarmctl service ... (swarmctl-service.c) */
int ctl_cmd_service(struct ctl *ctl, int argc, char **argv);
/* swarmctl secret ... (swarmctl-secret.c) */
int ctl_cmd_secret(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_unlock_key(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_ca(struct ctl *ctl, int argc, char **argv);

/* ------------------------------------------------------------------ task-spec flags
 * Shared by service create and update (swarmctl-spec.c). */

enum {
    OPT_SPEC_FIRST = 0x1000,
    OPT_SPEC_SECRET = OPT_SPEC_FIRST,
    OPT_SPEC_ENV,
    OPT_SPEC_WORKDIR,
    OPT_SPEC_USER,
    OPT_SPEC_HOSTNAME,
    OPT_SPEC_READ_ONLY,
    OPT_SPEC_LIMIT_MEMORY,
    OPT_SPEC_LIMIT_CPU,
    OPT_SPEC_LIMIT_PIDS,
    OPT_SPEC_RESERVE_MEMORY,
    OPT_SPEC_RESERVE_CPU,
    OPT_SPEC_CONSTRAINT,
    OPT_SPEC_CAP_ADD,
    OPT_SPEC_CAP_DROP,
    OPT_SPEC_RESTART_CONDITION,
    OPT_SPEC_RESTART_DELAY,
    OPT_SPEC_RESTART_MAX_ATTEMPTS,
    OPT_SPEC_ROOTFS,
    OPT_SPEC_NETWORK,
    OPT_SPEC_LAST,
};

/* getopt_long entries of the task-spec flags (-e, -u, -w are their short forms). */
// clang-format off
#define CTL_SPEC_LONGOPTS \
    {"secret", required_argument, NULL, OPT_SPEC_SECRET}, \
    {"env", required_argument, NULL, 'e'}, \
    {"workdir", required_argument, NULL, 'w'}, \
    {"user", required_argument, NULL, 'u'}, \
    {"hostname", required_argument, NULL, OPT_SPEC_HOSTNAME}, \
    {"read-only", optional_argument, NULL, OPT_SPEC_READ_ONLY}, \
    {"limit-memory", required_argument, NULL, OPT_SPEC_LIMIT_MEMORY}, \
    {"limit-cpu", required_argument, NULL, OPT_SPEC_LIMIT_CPU}, \
    {"limit-pids", required_argument, NULL, OPT_SPEC_LIMIT_PIDS}, \
    {"reserve-memory", required_argument, NULL, OPT_SPEC_RESERVE_MEMORY}, \
    {"reserve-cpu", required_argument, NULL, OPT_SPEC_RESERVE_CPU}, \
    {"constraint", required_argument, NULL, OPT_SPEC_CONSTRAINT}, \
    {"cap-add", required_argument, NULL, OPT_SPEC_CAP_ADD}, \
    {"cap-drop", required_argument, NULL, OPT_SPEC_CAP_DROP}, \
    {"restart-condition", required_argument, NULL, OPT_SPEC_RESTART_CONDITION}, \
    {"restart-delay", required_argument, NULL, OPT_SPEC_RESTART_DELAY}, \
    {"restart-max-attempts", required_argument, NULL, OPT_SPEC_RESTART_MAX_ATTEMPTS}, \
    {"rootfs", required_argument, NULL, OPT_SPEC_ROOTFS}, \
    {"network", required_argument, NULL, OPT_SPEC_NETWORK}
// clang-format on
#define CTL_SPEC_SHORTOPTS "e:w:u:"
/* Help lines of the task-spec flags. */
extern const char ctl_spec_help[];

struct ctl_strv {
    char **v;
    size_t n;
};

/* The task-spec flags given on a command line; every string is owned. */
struct ctl_spec {
    uint64_t given; /* bit (OPT_SPEC_x - OPT_SPEC_FIRST) per flag given, plus command */
    struct ctl_strv command, env, cap_add, cap_drop, constraints;
    Swarm__SecretRef **secrets;
    size_t n_secrets;
    char *workdir, *user, *hostname, *rootfs, *restart_condition, *network;
    bool read_only;
    int64_t limit_memory, limit_nano_cpus, limit_pids, reserve_memory, reserve_nano_cpus;
    uint64_t restart_delay_ns, restart_max_attempts;
};

void ctl_spec_init(struct ctl_spec *s);
void ctl_spec_finish(struct ctl_spec *s);
/* c: what getopt_long returned. CLI_EXIT_OK when taken, CLI_EXIT_USAGE after a usage
 * error was printed (cmd names the command), -1 when c is not a task-spec flag. */
int ctl_spec_option(struct ctl_spec *s, int c, const char *arg, const char *cmd);
/* The command and its arguments (at least one word); an exit code. */
int ctl_spec_set_command(struct ctl_spec *s, int argc, char *const *argv, const char *cmd);
/* Checks across flags (secret targets unique); an exit code. */
int ctl_spec_check(const struct ctl_spec *s, const char *cmd);
bool ctl_spec_empty(const struct ctl_spec *s);
/* Write the fields that were given into t; t points into s afterwards, so keep s until
 * t is packed. */
void ctl_spec_apply(const struct ctl_spec *s, Swarm__TaskSpec *t);
/* key: the task spec as JSON. */
void ctl_json_task_spec(struct cli_json *j, const char *key, const Swarm__TaskSpec *t);
/* The task spec for humans, each line indented by indent. */
void ctl_pretty_task_spec(const Swarm__TaskSpec *t, const char *indent);
/* Command words joined by spaces (truncated with "…" beyond max display columns when max
 * is not 0). */
void ctl_fmt_command(char *const *words, size_t n, size_t max, char *buf, size_t size);
