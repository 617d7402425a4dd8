/* swarmctl secret create|ls|inspect|update|rm: the data goes to the manager once and is never
 * shown (nor kept: it is wiped as soon as it is sent). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/swarmctl.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "proto/swarm.pb-c.h"

#define SECRET_MAX_SIZE (500u * 1024u)

static const char help_secret[] =
    "Usage:  swarmctl secret COMMAND\n"
    "\n"
    "Manage secrets\n"
    "\n"
    "Commands:\n"
    "  create      Create a secret from a file or STDIN\n"
    "  inspect     Display detailed information on one or more secrets\n"
    "  ls          List secrets\n"
    "  rm          Remove one or more secrets\n"
    "  update      Update a secret's labels (its data never changes)\n"
    "\n"
    "Options:\n"
    "  -h, --help  Print usage\n"
    "\n"
    "Run 'swarmctl secret COMMAND --help' for more information on a command.\n";

static const char help_create[] =
    "Usage:  swarmctl secret create [OPTIONS] NAME FILE|-\n"
    "\n"
    "Create a secret from a file, or from STDIN with '-' (at most 500 KiB), and print its\n"
    "ID. The data cannot be read back: tasks get it at /run/secrets/TARGET\n"
    "\n"
    "Options:\n"
    "  -h, --help        Print usage\n"
    "  -l, --label K=V   Secret label (repeatable)\n";

static const char help_ls[] =
    "Usage:  swarmctl secret ls [OPTIONS]\n"
    "\n"
    "List secrets\n"
    "\n"
    "Aliases:\n"
    "  ls, list\n"
    "\n"
    "Options:\n"
    "      --format string   Output format: table (default) or json (an array of objects)\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display secret IDs\n";

static const char help_inspect[] =
    "Usage:  swarmctl secret inspect [OPTIONS] SECRET [SECRET...]\n"
    "\n"
    "Display detailed information on one or more secrets (by ID, unique ID prefix or\n"
    "name), as a JSON array unless --pretty is given; never the data\n"
    "\n"
    "Options:\n"
    "  -h, --help     Print usage\n"
    "      --pretty   Print the information in a human friendly format\n";

static const char help_update[] =
    "Usage:  swarmctl secret update [OPTIONS] SECRET\n"
    "\n"
    "Update a secret's labels (by ID, unique ID prefix or name). Its data never changes:\n"
    "create a secret with a new name and update the services that use it\n"
    "\n"
    "Options:\n"
    "  -h, --help          Print usage\n"
    "      --label-add K=V Add or update a label (repeatable)\n"
    "      --label-rm K    Remove a label (repeatable)\n";

static const char help_rm[] =
    "Usage:  swarmctl secret rm SECRET [SECRET...]\n"
    "\n"
    "Remove one or more secrets (refused while a service uses one)\n"
    "\n"
    "Aliases:\n"
    "  rm, remove\n"
    "\n"
    "Options:\n"
    "  -h, --help   Print usage\n";

/* A server that sends data anyway must not have it printed, nor left in memory. */
static void secret_scrub(Swarm__Secret *s)
{
    if (s && s->data.data && s->data.len) {
        sw_erase(s->data.data, s->data.len);
        s->data.len = 0;
    }
}

/* ------------------------------------------------------------------ secret create */

/* Read at most SECRET_MAX_SIZE bytes from fd into buf (SECRET_MAX_SIZE + 1 bytes). */
static int read_secret(int fd, uint8_t *buf, size_t *ret_len)
{
    size_t len = 0;
    while (len <= SECRET_MAX_SIZE) {
        ssize_t n = read(fd, buf + len, SECRET_MAX_SIZE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > SECRET_MAX_SIZE)
        return -EFBIG;
    *ret_len = len;
    return 0;
}

static int cmd_secret_create(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "secret create";
    Swarm__Label **labels = NULL;
    size_t n_labels = 0;
    int c, r = CLI_EXIT_OK;

    optind = 0;
    while (r == CLI_EXIT_OK && (c = getopt_long(argc, argv, ":hl:", opts, NULL)) != -1) {
        switch (c) {
            case 'l': {
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
                return ctl_print_help(help_create);
            default:
                r = ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (r == CLI_EXIT_OK && argc - optind != 2)
        r = cli_usage_error(PROG, cmd,
                            "\"swarmctl secret create\" requires exactly 2 arguments: NAME and "
                            "FILE (or - for STDIN)");
    if (r == CLI_EXIT_OK && !cli_name_valid(argv[optind]))
        r = cli_usage_error(PROG, cmd,
                            "invalid secret name \"%s\": letters, digits, '_', '.' and '-', "
                            "starting with a letter or digit, at most 63",
                            argv[optind]);
    if (r == CLI_EXIT_OK && !argv[optind + 1][0])
        r = cli_usage_error(PROG, cmd, "the file name must not be empty (- reads STDIN)");
    if (r != CLI_EXIT_OK) {
        ctl_labels_free(labels, n_labels);
        return r;
    }
    const char *name = argv[optind], *file = argv[optind + 1];
    bool from_stdin = strcmp(file, "-") == 0;

    /* read before connecting: a bad file costs no connection */
    _cleanup_free_ uint8_t *data = malloc(SECRET_MAX_SIZE + 1);
    size_t len = 0;
    if (!data) {
        ctl_labels_free(labels, n_labels);
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int fd = from_stdin ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        r = -errno;
    } else {
        r = read_secret(fd, data, &len);
        if (!from_stdin)
            close(fd);
    }
    int code = CLI_EXIT_OK;
    if (r == -EFBIG) {
        fprintf(stderr,
                PROG
                ": secret %s: the data from %s is larger than 500 KiB, the limit for a "
                "secret\n",
                name, from_stdin ? "STDIN" : file);
        code = CLI_EXIT_FAILURE;
    } else if (r < 0) {
        fprintf(stderr, PROG ": secret %s: cannot read %s: %s\n", name, from_stdin ? "STDIN" : file,
                strerror(-r));
        code = CLI_EXIT_FAILURE;
    } else if (len == 0) {
        fprintf(stderr, PROG ": secret %s: %s is empty; a secret needs data\n", name,
                from_stdin ? "STDIN" : file);
        code = CLI_EXIT_FAILURE;
    }
    if (code == CLI_EXIT_OK)
        code = ctl_connect(ctl);
    if (code == CLI_EXIT_OK) {
        Swarm__CreateSecretRequest req = SWARM__CREATE_SECRET_REQUEST__INIT;
        req.name = (char *)name;
        req.data.data = data;
        req.data.len = len;
        req.labels = labels;
        req.n_labels = n_labels;
        ProtobufCMessage *m = NULL;
        r = ctl_call_object(ctl, "Control.CreateSecret", &req.base,
                            &swarm__secret_response__descriptor, NULL, name, &m);
        if (r != CALL_OK) {
            code = CLI_EXIT_FAILURE;
        } else {
            Swarm__SecretResponse *resp = (Swarm__SecretResponse *)m;
            secret_scrub(resp->secret);
            if (resp->secret && resp->secret->id[0]) {
                printf("%s\n", resp->secret->id);
            } else {
                fprintf(stderr, PROG ": swarmd answered without the secret's ID\n");
                code = CLI_EXIT_FAILURE;
            }
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    sw_erase(data, SECRET_MAX_SIZE + 1);
    ctl_labels_free(labels, n_labels);
    return ctl_finish_output(code);
}

/* ------------------------------------------------------------------ output */

static int secret_cmp(const void *a, const void *b)
{
    const Swarm__Secret *x = *(Swarm__Secret *const *)a;
    const Swarm__Secret *y = *(Swarm__Secret *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->id, y->id);
}

/* Digests come as hex; show them as "sha256:<hex>". */
static void fmt_digest(const char *hex, char *buf, size_t size)
{
    if (!hex[0] || strncmp(hex, "sha256:", 7) == 0)
        snprintf(buf, size, "%s", hex);
    else
        snprintf(buf, size, "sha256:%s", hex);
}

/* Every field but data, which is never written. */
static void secret_json(struct cli_json *j, const Swarm__Secret *s, bool full)
{
    char digest[128];
    cli_json_begin_object(j);
    cli_json_kv_string(j, "id", s->id);
    cli_json_kv_string(j, "name", s->name);
    if (s->meta) {
        if (full)
            cli_json_kv_uint(j, "version", s->meta->version);
        ctl_json_time(j, "created_at", s->meta->created_at);
        ctl_json_time(j, "updated_at", s->meta->updated_at);
    }
    ctl_json_labels(j, "labels", s->labels, s->n_labels);
    fmt_digest(s->digest, digest, sizeof(digest));
    cli_json_kv_string(j, "digest", digest);
    cli_json_end_object(j);
}

static void secret_pretty(const Swarm__Secret *s)
{
    char t[128];
    printf("ID:\t\t%s\n", s->id);
    printf("Name:\t\t%s\n", s->name);
    if (s->n_labels) {
        printf("Labels:\n");
        for (size_t i = 0; i < s->n_labels; i++)
            printf(" - %s=%s\n", s->labels[i]->key, s->labels[i]->value);
    }
    fmt_digest(s->digest, t, sizeof(t));
    printf("Digest:\t\t%s\n", t);
    ctl_fmt_time(s->meta ? s->meta->created_at : 0, t, sizeof(t));
    printf("Created at:\t%s\n", t);
    ctl_fmt_time(s->meta ? s->meta->updated_at : 0, t, sizeof(t));
    printf("Updated at:\t%s\n", t);
}

/* ------------------------------------------------------------------ secret ls */

static int cmd_secret_ls(struct ctl *ctl, int argc, char **argv)
{
    Swarm__ListSecretsRequest req = SWARM__LIST_SECRETS_REQUEST__INIT;
    const struct ctl_query q = {
        .cmd = "secret ls",
        .help = help_ls,
        .allow_table = true,
        .format = FORMAT_TABLE,
        .method = "Control.ListSecrets",
        .req = &req.base,
        .desc = &swarm__list_secrets_response__descriptor,
    };
    bool quiet;
    enum ctl_format format;
    ProtobufCMessage *m;
    int r = ctl_query(ctl, &q, argc, argv, &quiet, &format, &m);
    if (r != CLI_EXIT_OK || !m)
        return r;
    Swarm__ListSecretsResponse *resp = (Swarm__ListSecretsResponse *)m;
    for (size_t i = 0; i < resp->n_secrets; i++)
        secret_scrub(resp->secrets[i]);
    if (resp->n_secrets > 1)
        qsort(resp->secrets, resp->n_secrets, sizeof(resp->secrets[0]), secret_cmp);

    int code = CLI_EXIT_OK;
    if (quiet) {
        for (size_t i = 0; i < resp->n_secrets; i++)
            printf("%s\n", resp->secrets[i]->id);
    } else if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_array(&j);
        for (size_t i = 0; i < resp->n_secrets; i++)
            secret_json(&j, resp->secrets[i], false);
        cli_json_end_array(&j);
        if (cli_json_finish(&j) == -EINVAL)
            code = CLI_EXIT_FAILURE;
    } else {
        static const char *const headers[] = {"ID", "NAME", "CREATED", "UPDATED"};
        uint64_t now = sw_now_realtime_ns();
        cli_table *t = NULL;
        r = cli_table_create(SW_ARRAY_SIZE(headers), headers, &t);
        for (size_t i = 0; r >= 0 && i < resp->n_secrets; i++) {
            const Swarm__Secret *s = resp->secrets[i];
            char created[64], updated[64];
            cli_fmt_ago(s->meta ? s->meta->created_at : 0, now, created, sizeof(created));
            cli_fmt_ago(s->meta ? s->meta->updated_at : 0, now, updated, sizeof(updated));
            const char *row[] = {s->id, s->name, created, updated};
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

/* ------------------------------------------------------------------ secret inspect */

static int cmd_secret_inspect(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "secret inspect";
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
                               "\"swarmctl secret inspect\" requires at least 1 argument");
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, cmd, "a secret name must not be empty");
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
        Swarm__GetSecretRequest req = SWARM__GET_SECRET_REQUEST__INIT;
        req.id = argv[i];
        ProtobufCMessage *m = NULL;
        r = ctl_call_object(ctl, "Control.GetSecret", &req.base,
                            &swarm__secret_response__descriptor, "secret", argv[i], &m);
        if (r != CALL_OK) {
            code = CLI_EXIT_FAILURE;
            if (r == CALL_FAILED)
                break;
            continue;
        }
        Swarm__SecretResponse *resp = (Swarm__SecretResponse *)m;
        secret_scrub(resp->secret);
        if (!resp->secret) {
            fprintf(stderr, PROG ": no such secret: %s\n", argv[i]);
            code = CLI_EXIT_FAILURE;
        } else if (pretty) {
            if (!first)
                printf("\n");
            secret_pretty(resp->secret);
            first = false;
        } else {
            secret_json(&j, resp->secret, true);
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

/* ------------------------------------------------------------------ secret update */

static int cmd_secret_update(struct ctl *ctl, int argc, char **argv)
{
    enum { OPT_LABEL_ADD = 0x100, OPT_LABEL_RM };
    static const struct option opts[] = {
        {"label-add", required_argument, NULL, OPT_LABEL_ADD},
        {"label-rm", required_argument, NULL, OPT_LABEL_RM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "secret update";
    Swarm__UpdateSecretRequest req = SWARM__UPDATE_SECRET_REQUEST__INIT;
    struct ctl_label_edit le = {0};
    int c, r = CLI_EXIT_OK;

    optind = 0;
    while (r == CLI_EXIT_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_LABEL_ADD:
                r = ctl_label_edit_add(&le, optarg, cmd);
                break;
            case OPT_LABEL_RM:
                r = ctl_label_edit_rm(&le, optarg, cmd);
                break;
            case 'h':
                ctl_label_edit_free(&le);
                return ctl_print_help(help_update);
            default:
                r = ctl_getopt_usage(c, argv, opts, cmd);
        }
    }
    if (r == CLI_EXIT_OK && argc - optind != 1)
        r = cli_usage_error(PROG, cmd, "\"swarmctl secret update\" requires exactly 1 argument");
    if (r == CLI_EXIT_OK && !argv[optind][0])
        r = cli_usage_error(PROG, cmd, "a secret name must not be empty");
    if (r == CLI_EXIT_OK && le.n_add == 0 && le.n_rm == 0)
        r = cli_usage_error(PROG, cmd,
                            "nothing to update: give --label-add or --label-rm (a secret's data "
                            "never changes)");
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
        if (ctl_call_object(ctl, "Control.UpdateSecret", &req.base,
                            &swarm__secret_response__descriptor, "secret", argv[optind],
                            &m) == CALL_OK) {
            secret_scrub(((Swarm__SecretResponse *)m)->secret);
            printf("%s\n", argv[optind]);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            r = CLI_EXIT_FAILURE;
        }
    }
    ctl_label_edit_free(&le);
    return ctl_finish_output(r);
}

/* ------------------------------------------------------------------ secret rm */

static int cmd_secret_rm(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "secret rm";
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(help_rm);
        return ctl_getopt_usage(c, argv, opts, cmd);
    }
    if (optind >= argc)
        return cli_usage_error(PROG, cmd, "\"swarmctl secret rm\" requires at least 1 argument");
    for (int i = optind; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(PROG, cmd, "a secret name must not be empty");
    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    return ctl_remove_each(ctl, argv + optind, argc - optind, "Control.RemoveSecret",
                           &swarm__get_secret_request__descriptor, false, "secret");
}

/* ------------------------------------------------------------------ secret */

int ctl_cmd_secret(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h')
            return ctl_print_help(help_secret);
        return ctl_getopt_usage(c, argv, opts, "secret");
    }
    if (optind >= argc)
        return cli_usage_error(PROG, "secret", "\"swarmctl secret\" requires a command");
    const char *sub = argv[optind];
    argc -= optind;
    argv += optind;
    if (strcmp(sub, "create") == 0)
        return cmd_secret_create(ctl, argc, argv);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_secret_ls(ctl, argc, argv);
    if (strcmp(sub, "inspect") == 0)
        return cmd_secret_inspect(ctl, argc, argv);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return cmd_secret_rm(ctl, argc, argv);
    if (strcmp(sub, "update") == 0)
        return cmd_secret_update(ctl, argc, argv);
    return cli_usage_error(PROG, "secret", "unknown command \"secret %s\"", sub);
}
