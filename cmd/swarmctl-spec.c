/* swarmctl: the task-spec flags of service create/update (parsed and checked locally) and
 * the task spec's JSON and human views. */
#include <errno.h>
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

#define SECRET_DEFAULT_MODE 0444
#define BIT(opt) (1ULL << ((opt)-OPT_SPEC_FIRST))
#define BIT_COMMAND BIT(OPT_SPEC_LAST)

const char ctl_spec_help[] =
    "      --cap-add CAP                Add a capability (repeatable; ALL for every one)\n"
    "      --cap-drop CAP               Drop a capability (repeatable; ALL for every one)\n"
    "      --constraint EXPR            Placement constraint (repeatable):\n"
    "                                   node.id|node.hostname|node.role|node.labels.KEY\n"
    "                                   followed by == or != and a value\n"
    "  -e, --env K=V                    Set an environment variable (repeatable)\n"
    "      --hostname NAME              The task's hostname\n"
    "      --limit-cpu CPUS             CPU limit, e.g. 0.5\n"
    "      --limit-memory SIZE          Memory limit, e.g. 64M, 1G (units b, k, m, g, t, p)\n"
    "      --limit-pids N               Maximum number of processes\n"
    "      --network none|host          Network namespace: none (default) or the host's\n"
    "      --read-only[=true|false]     Mount the task's root read-only\n"
    "      --reserve-cpu CPUS           CPUs a node must have free, e.g. 0.5\n"
    "      --reserve-memory SIZE        Memory a node must have free, e.g. 64M\n"
    "      --restart-condition COND     Restart when a task ends: any (default),\n"
    "                                   on-failure or none\n"
    "      --restart-delay DURATION     Wait between restarts, e.g. 5s, 1m30s\n"
    "      --restart-max-attempts N     Give up after N restarts (0: never)\n"
    "      --rootfs DIR                 A root directory on the worker (default: a\n"
    "                                   read-only view of the host's /usr, /bin, /lib, /etc)\n"
    "      --secret NAME                Give the task a secret (repeatable), at\n"
    "      --secret source=NAME,target=FILE,mode=0400,uid=N,gid=N\n"
    "                                   /run/secrets/TARGET (default: NAME, mode 0444,\n"
    "                                   uid 0, gid 0)\n"
    "  -u, --user UID[:GID]             Run as this user\n"
    "  -w, --workdir DIR                Working directory inside the task\n";

/* ------------------------------------------------------------------ storage */

static int strv_add(struct ctl_strv *sv, const char *s)
{
    char **n = realloc(sv->v, (sv->n + 2) * sizeof(char *));
    if (!n)
        return -ENOMEM;
    sv->v = n;
    sv->v[sv->n] = strdup(s);
    if (!sv->v[sv->n])
        return -ENOMEM;
    sv->n++;
    sv->v[sv->n] = NULL;
    return 0;
}

static void strv_free(struct ctl_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

static void secret_ref_free(Swarm__SecretRef *r)
{
    if (!r)
        return;
    if (r->secret_name != protobuf_c_empty_string)
        free(r->secret_name);
    if (r->target != protobuf_c_empty_string)
        free(r->target);
    free(r);
}

void ctl_spec_init(struct ctl_spec *s)
{
    memset(s, 0, sizeof(*s));
}

void ctl_spec_finish(struct ctl_spec *s)
{
    strv_free(&s->command);
    strv_free(&s->env);
    strv_free(&s->cap_add);
    strv_free(&s->cap_drop);
    strv_free(&s->constraints);
    for (size_t i = 0; i < s->n_secrets; i++)
        secret_ref_free(s->secrets[i]);
    free(s->secrets);
    free(s->workdir);
    free(s->user);
    free(s->hostname);
    free(s->rootfs);
    free(s->restart_condition);
    free(s->network);
    memset(s, 0, sizeof(*s));
}

static int set_str(char **dst, const char *v)
{
    char *c = strdup(v);
    if (!c)
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

/* ------------------------------------------------------------------ checks */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool hostname_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !is_alnum(s[0]))
        return false;
    for (const char *p = s; *p; p++)
        if (!is_alnum(*p) && *p != '-' && *p != '.')
            return false;
    return true;
}

/* A user or group: a number, or a name ([a-z_][a-z0-9_.-]*). */
static bool user_part_valid(const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return false;
    bool digits = true;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            digits = false;
    if (digits) {
        char buf[33];
        uint64_t v;
        memcpy(buf, s, n);
        buf[n] = '\0';
        return cli_parse_uint(buf, UINT32_MAX - 1, &v) == 0;
    }
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

static bool user_valid(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon)
        return user_part_valid(s, strlen(s));
    return user_part_valid(s, (size_t)(colon - s)) && user_part_valid(colon + 1, strlen(colon + 1));
}

static bool cap_valid(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!is_alnum(*p) && *p != '_')
            return false;
    return true;
}

/* A file name under /run/secrets. */
static bool target_valid(const char *s)
{
    return s[0] && strlen(s) <= 255 && !strchr(s, '/') && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* node.(id|hostname|role|labels.K)(==|!=)VALUE, spaces around the parts dropped. */
static int parse_constraint(const char *arg, const char *cmd, struct ctl_strv *out)
{
    _cleanup_free_ char *copy = strdup(arg);
    if (!copy)
        return -ENOMEM;
    char *op = strstr(copy, "==");
    char *ne = strstr(copy, "!=");
    if (!op || (ne && ne < op))
        op = ne;
    if (!op)
        return cli_usage_error(
            PROG, cmd, "invalid --constraint \"%s\": expected KEY==VALUE or KEY!=VALUE", arg);
    bool eq = op[0] == '=';
    op[0] = '\0';
    char *key = trim(copy), *value = trim(op + 2);
    bool key_ok = strcmp(key, "node.id") == 0 || strcmp(key, "node.hostname") == 0 ||
                  strcmp(key, "node.role") == 0;
    if (strncmp(key, "node.labels.", 12) == 0) {
        key_ok = key[12] != '\0';
        for (const char *p = key + 12; *p; p++)
            if (*p == ' ' || *p == '\t' || *p == '=' || *p == '!')
                key_ok = false;
    }
    if (!key_ok)
        return cli_usage_error(PROG, cmd,
                               "invalid --constraint \"%s\": the key must be node.id, "
                               "node.hostname, node.role or node.labels.KEY",
                               arg);
    if (!value[0] || strstr(value, "==") || strstr(value, "!="))
        return cli_usage_error(PROG, cmd, "invalid --constraint \"%s\": the value is missing", arg);
    if (strcmp(key, "node.role") == 0 && strcmp(value, "manager") != 0 &&
        strcmp(value, "worker") != 0)
        return cli_usage_error(PROG, cmd,
                               "invalid --constraint \"%s\": node.role is manager or worker", arg);
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "%s%s%s", key, eq ? "==" : "!=", value);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return cli_usage_error(PROG, cmd, "invalid --constraint: too long");
    return strv_add(out, buf) < 0 ? -ENOMEM : CLI_EXIT_OK;
}

/* NAME, or source=NAME,target=FILE,mode=0400,uid=N,gid=N. */
static int parse_secret(const char *arg, const char *cmd, Swarm__SecretRef **ret)
{
    _cleanup_free_ char *copy = strdup(arg);
    if (!copy)
        return -ENOMEM;
    const char *source = NULL, *target = NULL;
    uint64_t mode = SECRET_DEFAULT_MODE, uid = 0, gid = 0;
    if (!strchr(copy, '=')) {
        source = copy;
    } else {
        char *save = copy;
        for (char *field; (field = strsep(&save, ","));) {
            char *eq = strchr(field, '=');
            if (!eq)
                return cli_usage_error(
                    PROG, cmd, "invalid --secret \"%s\": \"%s\" is not KEY=VALUE", arg, field);
            *eq = '\0';
            const char *k = field, *v = eq + 1;
            int r = 0;
            if (strcmp(k, "source") == 0 || strcmp(k, "src") == 0)
                source = v;
            else if (strcmp(k, "target") == 0)
                target = v;
            else if (strcmp(k, "mode") == 0) {
                char *end;
                errno = 0;
                unsigned long m = (v[0] >= '0' && v[0] <= '7') ? strtoul(v, &end, 8) : 0;
                if (!(v[0] >= '0' && v[0] <= '7') || errno || *end || m > 0777)
                    return cli_usage_error(PROG, cmd,
                                           "invalid --secret \"%s\": mode is an octal file "
                                           "mode such as 0400",
                                           arg);
                mode = m;
            } else if (strcmp(k, "uid") == 0)
                r = cli_parse_uint(v, UINT32_MAX - 1, &uid);
            else if (strcmp(k, "gid") == 0)
                r = cli_parse_uint(v, UINT32_MAX - 1, &gid);
            else
                return cli_usage_error(PROG, cmd,
                                       "invalid --secret \"%s\": unknown option \"%s\" (expected "
                                       "source, target, mode, uid, gid)",
                                       arg, k);
            if (r < 0)
                return cli_usage_error(PROG, cmd, "invalid --secret \"%s\": %s is not a number",
                                       arg, k);
        }
    }
    if (!source || !source[0])
        return cli_usage_error(PROG, cmd, "invalid --secret \"%s\": the source name is missing",
                               arg);
    if (!cli_name_valid(source))
        return cli_usage_error(
            PROG, cmd, "invalid --secret \"%s\": \"%s\" is not a valid secret name", arg, source);
    if (!target)
        target = source;
    if (!target_valid(target))
        return cli_usage_error(PROG, cmd,
                               "invalid --secret \"%s\": target must be a file name (no '/')", arg);
    Swarm__SecretRef *ref = malloc(sizeof(*ref));
    if (!ref)
        return -ENOMEM;
    swarm__secret_ref__init(ref);
    ref->secret_name = strdup(source);
    ref->target = strdup(target);
    if (!ref->secret_name || !ref->target) {
        free(ref->secret_name);
        free(ref->target);
        free(ref);
        return -ENOMEM;
    }
    ref->mode = (uint32_t)mode;
    ref->uid = (uint32_t)uid;
    ref->gid = (uint32_t)gid;
    *ret = ref;
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ flags */

static int spec_option(struct ctl_spec *s, int opt, const char *arg, const char *cmd)
{
    static const char *const conditions[] = {"any", "on-failure", "none"};
    static const char *const networks[] = {"none", "host"};
    int64_t v;
    uint64_t u;
    int r;

    switch (opt) {
        case OPT_SPEC_SECRET: {
            Swarm__SecretRef *ref = NULL;
            r = parse_secret(arg, cmd, &ref);
            if (r != CLI_EXIT_OK)
                return r;
            Swarm__SecretRef **n = realloc(s->secrets, (s->n_secrets + 1) * sizeof(*n));
            if (!n) {
                secret_ref_free(ref);
                return -ENOMEM;
            }
            s->secrets = n;
            s->secrets[s->n_secrets++] = ref;
            return CLI_EXIT_OK;
        }
        case OPT_SPEC_ENV: {
            const char *eq = strchr(arg, '=');
            if (!eq || eq == arg)
                return cli_usage_error(PROG, cmd, "invalid --env \"%s\": expected KEY=VALUE", arg);
            return strv_add(&s->env, arg);
        }
        case OPT_SPEC_WORKDIR:
            if (arg[0] != '/')
                return cli_usage_error(PROG, cmd, "invalid --workdir \"%s\": an absolute path",
                                       arg);
            return set_str(&s->workdir, arg);
        case OPT_SPEC_USER:
            if (!user_valid(arg))
                return cli_usage_error(PROG, cmd, "invalid --user \"%s\": expected UID[:GID]", arg);
            return set_str(&s->user, arg);
        case OPT_SPEC_HOSTNAME:
            if (!hostname_valid(arg))
                return cli_usage_error(PROG, cmd,
                                       "invalid --hostname \"%s\": letters, digits, '-' and '.', "
                                       "at most 64",
                                       arg);
            return set_str(&s->hostname, arg);
        case OPT_SPEC_READ_ONLY:
            if (!arg || strcmp(arg, "true") == 0)
                s->read_only = true;
            else if (strcmp(arg, "false") == 0)
                s->read_only = false;
            else
                return cli_usage_error(PROG, cmd, "invalid --read-only \"%s\": true or false", arg);
            return CLI_EXIT_OK;
        case OPT_SPEC_LIMIT_MEMORY:
        case OPT_SPEC_RESERVE_MEMORY:
            if (cli_parse_size(arg, &v) < 0)
                return cli_usage_error(
                    PROG, cmd, "invalid %s \"%s\": a size such as 64M or 1G",
                    opt == OPT_SPEC_LIMIT_MEMORY ? "--limit-memory" : "--reserve-memory", arg);
            *(opt == OPT_SPEC_LIMIT_MEMORY ? &s->limit_memory : &s->reserve_memory) = v;
            return CLI_EXIT_OK;
        case OPT_SPEC_LIMIT_CPU:
        case OPT_SPEC_RESERVE_CPU:
            if (cli_parse_nano_cpus(arg, &v) < 0)
                return cli_usage_error(
                    PROG, cmd, "invalid %s \"%s\": a positive number of CPUs such as 0.5",
                    opt == OPT_SPEC_LIMIT_CPU ? "--limit-cpu" : "--reserve-cpu", arg);
            *(opt == OPT_SPEC_LIMIT_CPU ? &s->limit_nano_cpus : &s->reserve_nano_cpus) = v;
            return CLI_EXIT_OK;
        case OPT_SPEC_LIMIT_PIDS:
            if (cli_parse_uint(arg, INT64_MAX, &u) < 0 || u == 0)
                return cli_usage_error(PROG, cmd, "invalid --limit-pids \"%s\": a positive number",
                                       arg);
            s->limit_pids = (int64_t)u;
            return CLI_EXIT_OK;
        case OPT_SPEC_CONSTRAINT:
            return parse_constraint(arg, cmd, &s->constraints);
        case OPT_SPEC_CAP_ADD:
        case OPT_SPEC_CAP_DROP:
            if (!cap_valid(arg))
                return cli_usage_error(PROG, cmd,
                                       "invalid %s \"%s\": a capability such as NET_ADMIN or ALL",
                                       opt == OPT_SPEC_CAP_ADD ? "--cap-add" : "--cap-drop", arg);
            return strv_add(opt == OPT_SPEC_CAP_ADD ? &s->cap_add : &s->cap_drop, arg);
        case OPT_SPEC_RESTART_CONDITION:
            if (cli_parse_choice(arg, conditions, SW_ARRAY_SIZE(conditions)) < 0)
                return cli_usage_error(PROG, cmd,
                                       "invalid --restart-condition \"%s\": any, on-failure or "
                                       "none",
                                       arg);
            return set_str(&s->restart_condition, arg);
        case OPT_SPEC_RESTART_DELAY:
            if (sw_duration_parse(arg, &u) < 0)
                return cli_usage_error(PROG, cmd,
                                       "invalid --restart-delay \"%s\": a duration such as 5s or "
                                       "1m30s",
                                       arg);
            s->restart_delay_ns = u;
            return CLI_EXIT_OK;
        case OPT_SPEC_RESTART_MAX_ATTEMPTS:
            if (cli_parse_uint(arg, 1000, &u) < 0)
                return cli_usage_error(
                    PROG, cmd, "invalid --restart-max-attempts \"%s\": a number up to 1000", arg);
            s->restart_max_attempts = u;
            return CLI_EXIT_OK;
        case OPT_SPEC_ROOTFS:
            if (arg[0] != '/')
                return cli_usage_error(PROG, cmd, "invalid --rootfs \"%s\": an absolute path", arg);
            return set_str(&s->rootfs, arg);
        case OPT_SPEC_NETWORK:
            if (cli_parse_choice(arg, networks, SW_ARRAY_SIZE(networks)) < 0)
                return cli_usage_error(PROG, cmd, "invalid --network \"%s\": none or host", arg);
            return set_str(&s->network, arg);
        default:
            return -1;
    }
}

int ctl_spec_option(struct ctl_spec *s, int c, const char *arg, const char *cmd)
{
    int opt = c == 'e' ? OPT_SPEC_ENV : c == 'w' ? OPT_SPEC_WORKDIR : c == 'u' ? OPT_SPEC_USER : c;
    if (opt < OPT_SPEC_FIRST || opt >= OPT_SPEC_LAST)
        return -1;
    int r = spec_option(s, opt, arg, cmd);
    if (r == -ENOMEM) {
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    if (r == CLI_EXIT_OK)
        s->given |= BIT(opt);
    return r;
}

int ctl_spec_set_command(struct ctl_spec *s, int argc, char *const *argv, const char *cmd)
{
    if (argc < 1 || !argv[0][0])
        return cli_usage_error(PROG, cmd, "a command to run is required (-- COMMAND [ARG...])");
    strv_free(&s->command);
    for (int i = 0; i < argc; i++) {
        if (strv_add(&s->command, argv[i]) < 0) {
            fprintf(stderr, PROG ": out of memory\n");
            return CLI_EXIT_FAILURE;
        }
    }
    s->given |= BIT_COMMAND;
    return CLI_EXIT_OK;
}

int ctl_spec_check(const struct ctl_spec *s, const char *cmd)
{
    for (size_t i = 0; i < s->n_secrets; i++)
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->secrets[i]->target, s->secrets[k]->target) == 0)
                return cli_usage_error(PROG, cmd, "two secrets have the same target \"%s\"",
                                       s->secrets[i]->target);
    if ((s->given & BIT(OPT_SPEC_LIMIT_MEMORY)) && (s->given & BIT(OPT_SPEC_RESERVE_MEMORY)) &&
        s->limit_memory > 0 && s->reserve_memory > s->limit_memory)
        return cli_usage_error(PROG, cmd, "--reserve-memory is above --limit-memory");
    if ((s->given & BIT(OPT_SPEC_LIMIT_CPU)) && (s->given & BIT(OPT_SPEC_RESERVE_CPU)) &&
        s->reserve_nano_cpus > s->limit_nano_cpus)
        return cli_usage_error(PROG, cmd, "--reserve-cpu is above --limit-cpu");
    return CLI_EXIT_OK;
}

bool ctl_spec_empty(const struct ctl_spec *s)
{
    return s->given == 0;
}

void ctl_spec_apply(const struct ctl_spec *s, Swarm__TaskSpec *t)
{
#define GIVEN(opt) (s->given & BIT(opt))
    if (s->given & BIT_COMMAND) {
        t->command = s->command.v;
        t->n_command = s->command.n;
    }
    if (GIVEN(OPT_SPEC_ENV)) {
        t->env = s->env.v;
        t->n_env = s->env.n;
    }
    if (GIVEN(OPT_SPEC_CAP_ADD)) {
        t->cap_add = s->cap_add.v;
        t->n_cap_add = s->cap_add.n;
    }
    if (GIVEN(OPT_SPEC_CAP_DROP)) {
        t->cap_drop = s->cap_drop.v;
        t->n_cap_drop = s->cap_drop.n;
    }
    if (GIVEN(OPT_SPEC_CONSTRAINT)) {
        t->constraints = s->constraints.v;
        t->n_constraints = s->constraints.n;
    }
    if (GIVEN(OPT_SPEC_SECRET)) {
        t->secrets = s->secrets;
        t->n_secrets = s->n_secrets;
    }
    if (GIVEN(OPT_SPEC_WORKDIR))
        t->workdir = s->workdir;
    if (GIVEN(OPT_SPEC_USER))
        t->user = s->user;
    if (GIVEN(OPT_SPEC_HOSTNAME))
        t->hostname = s->hostname;
    if (GIVEN(OPT_SPEC_ROOTFS))
        t->rootfs = s->rootfs;
    if (GIVEN(OPT_SPEC_NETWORK))
        t->network = s->network;
    if (GIVEN(OPT_SPEC_RESTART_CONDITION))
        t->restart_condition = s->restart_condition;
    if (GIVEN(OPT_SPEC_READ_ONLY))
        t->read_only = s->read_only;
    if (GIVEN(OPT_SPEC_LIMIT_MEMORY))
        t->limit_memory = s->limit_memory;
    if (GIVEN(OPT_SPEC_LIMIT_CPU))
        t->limit_nano_cpus = s->limit_nano_cpus;
    if (GIVEN(OPT_SPEC_LIMIT_PIDS))
        t->limit_pids = s->limit_pids;
    if (GIVEN(OPT_SPEC_RESERVE_MEMORY))
        t->reserve_memory = s->reserve_memory;
    if (GIVEN(OPT_SPEC_RESERVE_CPU))
        t->reserve_nano_cpus = s->reserve_nano_cpus;
    if (GIVEN(OPT_SPEC_RESTART_DELAY))
        t->restart_delay_ns = s->restart_delay_ns;
    if (GIVEN(OPT_SPEC_RESTART_MAX_ATTEMPTS))
        t->restart_max_attempts = s->restart_max_attempts;
#undef GIVEN
}

/* ------------------------------------------------------------------ output */

void ctl_fmt_command(char *const *words, size_t n, size_t max, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < size; i++) {
        int w = snprintf(buf + off, size - off, "%s%s", i ? " " : "", words[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (off >= size && size >= 4) /* cut: mark it (a whole UTF-8 sequence may be cut) */
        snprintf(buf + size - 4, 4, "\xe2\x80\xa6");
    if (max && cli_text_width(buf) > max) {
        /* cut at the max-1'th code point and add an ellipsis */
        size_t cps = 0, i = 0;
        while (buf[i] && cps < max - 1) {
            i++;
            while ((buf[i] & 0xc0) == 0x80)
                i++;
            cps++;
        }
        if (i + 4 <= size)
            snprintf(buf + i, size - i, "\xe2\x80\xa6");
    }
}

static void json_strv(struct cli_json *j, const char *key, char *const *v, size_t n)
{
    cli_json_key(j, key);
    cli_json_begin_array(j);
    for (size_t i = 0; i < n; i++)
        cli_json_string(j, v[i]);
    cli_json_end_array(j);
}

void ctl_json_task_spec(struct cli_json *j, const char *key, const Swarm__TaskSpec *t)
{
    char buf[64];
    cli_json_key(j, key);
    cli_json_begin_object(j);
    json_strv(j, "command", t->command, t->n_command);
    json_strv(j, "env", t->env, t->n_env);
    cli_json_kv_string(j, "workdir", t->workdir);
    cli_json_kv_string(j, "user", t->user);
    cli_json_kv_string(j, "hostname", t->hostname);
    cli_json_kv_bool(j, "read_only", t->read_only);
    cli_json_kv_string(j, "rootfs", t->rootfs);
    cli_json_kv_string(j, "network", t->network);
    json_strv(j, "cap_add", t->cap_add, t->n_cap_add);
    json_strv(j, "cap_drop", t->cap_drop, t->n_cap_drop);
    cli_json_key(j, "secrets");
    cli_json_begin_array(j);
    for (size_t i = 0; i < t->n_secrets; i++) {
        const Swarm__SecretRef *r = t->secrets[i];
        cli_json_begin_object(j);
        cli_json_kv_string(j, "secret_id", r->secret_id);
        cli_json_kv_string(j, "secret_name", r->secret_name);
        cli_json_kv_string(j, "target", r->target);
        snprintf(buf, sizeof(buf), "%04" PRIo32, r->mode);
        cli_json_kv_string(j, "mode", buf);
        cli_json_kv_uint(j, "uid", r->uid);
        cli_json_kv_uint(j, "gid", r->gid);
        cli_json_end_object(j);
    }
    cli_json_end_array(j);
    cli_json_key(j, "limits");
    cli_json_begin_object(j);
    cli_json_kv_int(j, "memory_bytes", t->limit_memory);
    cli_json_kv_int(j, "nano_cpus", t->limit_nano_cpus);
    cli_json_kv_int(j, "pids", t->limit_pids);
    cli_json_end_object(j);
    cli_json_key(j, "reservations");
    cli_json_begin_object(j);
    cli_json_kv_int(j, "memory_bytes", t->reserve_memory);
    cli_json_kv_int(j, "nano_cpus", t->reserve_nano_cpus);
    cli_json_end_object(j);
    json_strv(j, "constraints", t->constraints, t->n_constraints);
    cli_json_key(j, "restart_policy");
    cli_json_begin_object(j);
    cli_json_kv_string(j, "condition", t->restart_condition);
    sw_duration_format(t->restart_delay_ns, buf, sizeof(buf));
    cli_json_kv_string(j, "delay", buf);
    cli_json_kv_uint(j, "max_attempts", t->restart_max_attempts);
    cli_json_end_object(j);
    cli_json_end_object(j);
}

static void pretty_list(const char *indent, const char *title, char *const *v, size_t n)
{
    if (n == 0)
        return;
    printf("%s%s:\n", indent, title);
    for (size_t i = 0; i < n; i++)
        printf("%s - %s\n", indent, v[i]);
}

static void fmt_mem(int64_t v, char *buf, size_t size)
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

void ctl_pretty_task_spec(const Swarm__TaskSpec *t, const char *indent)
{
    char buf[4096];
    ctl_fmt_command(t->command, t->n_command, 0, buf, sizeof(buf));
    printf("%sCommand:\t\t%s\n", indent, buf);
    pretty_list(indent, "Env", t->env, t->n_env);
    if (t->workdir[0])
        printf("%sWorkdir:\t\t%s\n", indent, t->workdir);
    if (t->user[0])
        printf("%sUser:\t\t\t%s\n", indent, t->user);
    if (t->hostname[0])
        printf("%sHostname:\t\t%s\n", indent, t->hostname);
    printf("%sRoot:\t\t\t%s%s\n", indent, t->rootfs[0] ? t->rootfs : "(host view)",
           t->read_only ? " (read-only)" : "");
    printf("%sNetwork:\t\t%s\n", indent, t->network[0] ? t->network : "none");
    pretty_list(indent, "Capabilities added", t->cap_add, t->n_cap_add);
    pretty_list(indent, "Capabilities dropped", t->cap_drop, t->n_cap_drop);
    if (t->n_secrets) {
        printf("%sSecrets:\n", indent);
        for (size_t i = 0; i < t->n_secrets; i++) {
            const Swarm__SecretRef *r = t->secrets[i];
            printf("%s - %s -> /run/secrets/%s (mode %04" PRIo32 ", uid %" PRIu32 ", gid %" PRIu32
                   ")\n",
                   indent, r->secret_name, r->target, r->mode, r->uid, r->gid);
        }
    }
    if (t->limit_memory || t->limit_nano_cpus || t->limit_pids) {
        printf("%sLimits:\n", indent);
        if (t->limit_nano_cpus)
            printf("%s CPU:\t\t\t%g\n", indent, (double)t->limit_nano_cpus / 1e9);
        if (t->limit_memory) {
            fmt_mem(t->limit_memory, buf, sizeof(buf));
            printf("%s Memory:\t\t%s\n", indent, buf);
        }
        if (t->limit_pids)
            printf("%s PIDs:\t\t%" PRId64 "\n", indent, t->limit_pids);
    }
    if (t->reserve_memory || t->reserve_nano_cpus) {
        printf("%sReservations:\n", indent);
        if (t->reserve_nano_cpus)
            printf("%s CPU:\t\t\t%g\n", indent, (double)t->reserve_nano_cpus / 1e9);
        if (t->reserve_memory) {
            fmt_mem(t->reserve_memory, buf, sizeof(buf));
            printf("%s Memory:\t\t%s\n", indent, buf);
        }
    }
    pretty_list(indent, "Placement constraints", t->constraints, t->n_constraints);
    printf("%sRestart Policy:\n", indent);
    printf("%s Condition:\t\t%s\n", indent, t->restart_condition[0] ? t->restart_condition : "any");
    sw_duration_format(t->restart_delay_ns, buf, sizeof(buf));
    printf("%s Delay:\t\t%s\n", indent, buf);
    printf("%s Max Attempts:\t\t%" PRIu64 "\n", indent, t->restart_max_attempts);
}
