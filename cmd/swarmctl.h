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
int ctl_parse_format(const char *value,
                     bool allow_table,
                     bool allow_pretty,
                     enum ctl_format *ret,
                     const char *cmd);

/* Resolve -H / SWARM_HOST / the default and connect; an exit code (0 when connected),
 * after printing one line on failure. */
int ctl_connect(struct ctl *ctl);
void ctl_close(struct ctl *ctl);
/* One unary call. CALL_OK: *ret_resp (free with protobuf_c_message_free_unpacked).
 * CALL_SERVER_ERROR: *ret_status and error hold the server's answer. CALL_FAILED: a
 * message was already printed. */
int ctl_call(struct ctl *ctl,
             const char *method,
             const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc,
             ProtobufCMessage **ret_resp,
             int *ret_status,
             char *error,
             size_t error_size);
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
int ctl_query(struct ctl *ctl,
              const struct ctl_query *q,
              int argc,
              char **argv,
              bool *ret_quiet,
              enum ctl_format *ret_format,
              ProtobufCMessage **ret_resp);
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
