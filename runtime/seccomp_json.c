/* runtime/seccomp_json.c: a seccomp profile in Docker's JSON format, validated field by
 * field and compiled to BPF with libseccomp (rules chosen by caps, arch and kernel). */
#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "runtime/internal.h"

#define PROFILE_MAX_BYTES (1024 * 1024)
#define MAX_ERRNO 4095
#define MAX_ARGS 6

struct ctx {
    char *errmsg;
    size_t errmsg_size;
    uint64_t caps;
    uint32_t native;
    unsigned kernel_major, kernel_minor;
    uint32_t default_action;
};

static int bad(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct ctx *c, const char *fmt, ...)
{
    if (c->errmsg && c->errmsg_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errmsg, c->errmsg_size, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const char *type_of(const sw_json *v)
{
    return sw_json_type_name(sw_json_type_of(v));
}

static int want_type(struct ctx *c, const sw_json *v, enum sw_json_type t, const char *path)
{
    if (sw_json_type_of(v) != t)
        return bad(c, "%s: expected %s %s, got %s", path,
                   t == SW_JSON_ARRAY || t == SW_JSON_OBJECT ? "an" : "a", sw_json_type_name(t),
                   type_of(v));
    return 0;
}

/* Every key of object v must be one of allowed[]. */
static int check_keys(struct ctx *c, const sw_json *v, const char *const *allowed, size_t n,
                      const char *path)
{
    for (size_t i = 0; i < sw_json_count(v); i++) {
        const char *k = sw_json_key_at(v, i);
        bool ok = false;
        for (size_t j = 0; j < n && !ok; j++)
            ok = strcmp(k, allowed[j]) == 0;
        if (!ok)
            return bad(c, "%s%s%.64s: unknown field", path, *path ? "." : "", k);
    }
    return 0;
}

/* An array of non-empty strings, or absent. */
static int string_array(struct ctx *c, const sw_json *v, const char *path)
{
    if (!v)
        return 0;
    int r = want_type(c, v, SW_JSON_ARRAY, path);
    if (r < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(v); i++) {
        const char *s = sw_json_get_string(sw_json_at(v, i), NULL);
        if (!s)
            return bad(c, "%s[%zu]: expected a string, got %s", path, i, type_of(sw_json_at(v, i)));
        if (!*s)
            return bad(c, "%s[%zu]: empty string", path, i);
    }
    return 0;
}

static int get_uint(struct ctx *c, const sw_json *v, uint64_t max, const char *path, uint64_t *ret)
{
    uint64_t u;
    if (sw_json_type_of(v) != SW_JSON_NUMBER)
        return bad(c, "%s: expected a number, got %s", path, type_of(v));
    if (!sw_json_get_uint64(v, &u) || u > max)
        return bad(c, "%s: expected an integer from 0 to %llu", path, (unsigned long long)max);
    *ret = u;
    return 0;
}

/* "SCMP_ACT_ERRNO" and its errnoRet (absent: EPERM) -> a libseccomp action. */
static int parse_action(struct ctx *c, const sw_json *v, const sw_json *errno_ret, const char *path,
                        const char *errno_path, uint32_t *ret)
{
    if (!v)
        return bad(c, "%s: missing", path);
    const char *s = sw_json_get_string(v, NULL);
    if (!s)
        return bad(c, "%s: expected a string, got %s", path, type_of(v));
    uint64_t e = EPERM;
    if (errno_ret) {
        int r = get_uint(c, errno_ret, MAX_ERRNO, errno_path, &e);
        if (r < 0)
            return r;
    }
    if (strcmp(s, "SCMP_ACT_ALLOW") == 0)
        *ret = SCMP_ACT_ALLOW;
    else if (strcmp(s, "SCMP_ACT_ERRNO") == 0)
        *ret = SCMP_ACT_ERRNO((uint32_t)e);
    else if (strcmp(s, "SCMP_ACT_KILL") == 0 || strcmp(s, "SCMP_ACT_KILL_THREAD") == 0)
        *ret = SCMP_ACT_KILL_THREAD;
    else if (strcmp(s, "SCMP_ACT_KILL_PROCESS") == 0)
        *ret = SCMP_ACT_KILL_PROCESS;
    else if (strcmp(s, "SCMP_ACT_TRAP") == 0)
        *ret = SCMP_ACT_TRAP;
    else if (strcmp(s, "SCMP_ACT_TRACE") == 0)
        *ret = SCMP_ACT_TRACE((uint32_t)e);
    else if (strcmp(s, "SCMP_ACT_LOG") == 0)
        *ret = SCMP_ACT_LOG;
    else if (strcmp(s, "SCMP_ACT_NOTIFY") == 0)
        return bad(c, "%s: SCMP_ACT_NOTIFY is not supported (no seccomp agent)", path);
    else
        return bad(c, "%s: unknown action %.64s", path, s);
    return 0;
}

/* "SCMP_ARCH_X86_64" -> libseccomp's token. */
static int parse_arch(struct ctx *c, const char *s, const char *path, uint32_t *ret)
{
    char lower[32];
    size_t n = strncmp(s, "SCMP_ARCH_", 10) == 0 ? strlen(s + 10) : 0;
    if (n == 0 || n >= sizeof(lower))
        return bad(c, "%s: unknown architecture %.64s", path, s);
    for (size_t i = 0; i <= n; i++) {
        char ch = s[10 + i];
        lower[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    uint32_t a = seccomp_arch_resolve_name(lower);
    if (a == 0)
        return bad(c, "%s: unknown architecture %.64s", path, s);
    *ret = a;
    return 0;
}

static int add_arch(struct ctx *c, scmp_filter_ctx f, const char *s, const char *path)
{
    uint32_t a;
    int r = parse_arch(c, s, path, &a);
    if (r < 0)
        return r;
    r = seccomp_arch_add(f, a);
    if (r < 0 && r != -EEXIST)
        return bad(c, "%s: cannot add architecture %.64s: %s", path, s, strerror(-r));
    return 0;
}

/* architectures[], or archMap[] (the native arch's entry: its sub-arches join it). */
static int parse_arches(struct ctx *c, const sw_json *root, scmp_filter_ctx f)
{
    const sw_json *arches = sw_json_get(root, "architectures");
    const sw_json *map = sw_json_get(root, "archMap");
    char path[96];
    int r;
    if (sw_json_count(arches) && sw_json_count(map))
        return bad(c, "architectures: give either architectures or archMap, not both");
    if ((r = string_array(c, arches, "architectures")) < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(arches); i++) {
        snprintf(path, sizeof(path), "architectures[%zu]", i);
        if ((r = add_arch(c, f, sw_json_get_string(sw_json_at(arches, i), NULL), path)) < 0)
            return r;
    }
    if (!map)
        return 0;
    if ((r = want_type(c, map, SW_JSON_ARRAY, "archMap")) < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(map); i++) {
        const sw_json *e = sw_json_at(map, i);
        snprintf(path, sizeof(path), "archMap[%zu]", i);
        if ((r = want_type(c, e, SW_JSON_OBJECT, path)) < 0)
            return r;
        static const char *const keys[] = {"architecture", "subArchitectures"};
        if ((r = check_keys(c, e, keys, SW_ARRAY_SIZE(keys), path)) < 0)
            return r;
        snprintf(path, sizeof(path), "archMap[%zu].architecture", i);
        const char *main_arch = sw_json_get_string(sw_json_get(e, "architecture"), NULL);
        if (!main_arch)
            return bad(c, "%s: missing or not a string", path);
        uint32_t a;
        if ((r = parse_arch(c, main_arch, path, &a)) < 0)
            return r;
        const sw_json *subs = sw_json_get(e, "subArchitectures");
        snprintf(path, sizeof(path), "archMap[%zu].subArchitectures", i);
        if ((r = string_array(c, subs, path)) < 0)
            return r;
        for (size_t j = 0; j < sw_json_count(subs); j++) {
            const char *sub = sw_json_get_string(sw_json_at(subs, j), NULL);
            uint32_t sa;
            snprintf(path, sizeof(path), "archMap[%zu].subArchitectures[%zu]", i, j);
            if ((r = parse_arch(c, sub, path, &sa)) < 0)
                return r;
            if (a == c->native && (r = add_arch(c, f, sub, path)) < 0)
                return r;
        }
    }
    return 0;
}

/* "4.8" -> (4, 8). */
static int parse_kernel(struct ctx *c, const sw_json *v, const char *path, unsigned *ret_major,
                        unsigned *ret_minor)
{
    const char *s = sw_json_get_string(v, NULL);
    if (!s)
        return bad(c, "%s: expected a string like \"4.8\", got %s", path, type_of(v));
    unsigned a, b;
    int n = 0;
    if (sscanf(s, "%3u.%3u%n", &a, &b, &n) != 2 || s[n] != '\0' || a == 0)
        return bad(c, "%s: bad kernel version \"%.32s\" (want \"MAJOR.MINOR\")", path, s);
    *ret_major = a;
    *ret_minor = b;
    return 0;
}

/* Filter arches name the host the Go way ("amd64"); libseccomp's names are accepted too. */
static bool native_arch_in(const struct ctx *c, const sw_json *arches)
{
    const char *names[3] = {NULL, NULL, NULL};
    switch (c->native) {
        case SCMP_ARCH_X86_64:
            names[0] = "amd64";
            names[1] = "x86_64";
            break;
        case SCMP_ARCH_X86:
            names[0] = "386";
            names[1] = "x86";
            break;
        case SCMP_ARCH_AARCH64:
            names[0] = "arm64";
            names[1] = "aarch64";
            break;
        case SCMP_ARCH_ARM:
            names[0] = "arm";
            break;
        case SCMP_ARCH_PPC64LE:
            names[0] = "ppc64le";
            break;
        case SCMP_ARCH_S390X:
            names[0] = "s390x";
            break;
        case SCMP_ARCH_RISCV64:
            names[0] = "riscv64";
            break;
        default:
            break;
    }
    for (size_t i = 0; i < sw_json_count(arches); i++) {
        const char *s = sw_json_get_string(sw_json_at(arches, i), NULL);
        for (size_t j = 0; names[j]; j++)
            if (strcasecmp(s, names[j]) == 0)
                return true;
    }
    return false;
}

/* includes/excludes: validate, then say whether the rule applies to this task and host.
 * includes: every condition must hold; excludes: any one holding drops the rule. */
static int parse_filter(struct ctx *c, const sw_json *v, bool includes, const char *path,
                        bool *ret_applies)
{
    int r;
    char sub[256];
    *ret_applies = true;
    if (!v)
        return 0;
    if ((r = want_type(c, v, SW_JSON_OBJECT, path)) < 0)
        return r;
    static const char *const keys[] = {"caps", "arches", "minKernel"};
    if ((r = check_keys(c, v, keys, SW_ARRAY_SIZE(keys), path)) < 0)
        return r;
    bool all = true, any = false;
    const sw_json *caps = sw_json_get(v, "caps");
    snprintf(sub, sizeof(sub), "%s.caps", path);
    if ((r = string_array(c, caps, sub)) < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(caps); i++) {
        const char *name = sw_json_get_string(sw_json_at(caps, i), NULL);
        int bit = -1;
        bool is_all = false;
        if (rt_cap_parse(name, &bit, &is_all) < 0 || is_all || bit < 0 || bit > 63)
            return bad(c, "%s[%zu]: unknown capability %.64s", sub, i, name);
        bool held = c->caps & (1ULL << bit);
        all = all && held;
        any = any || held;
    }
    const sw_json *arches = sw_json_get(v, "arches");
    snprintf(sub, sizeof(sub), "%s.arches", path);
    if ((r = string_array(c, arches, sub)) < 0)
        return r;
    if (sw_json_count(arches)) {
        bool in = native_arch_in(c, arches);
        all = all && in;
        any = any || in;
    }
    const sw_json *mk = sw_json_get(v, "minKernel");
    if (mk) {
        unsigned ma = 0, mi = 0;
        snprintf(sub, sizeof(sub), "%s.minKernel", path);
        if ((r = parse_kernel(c, mk, sub, &ma, &mi)) < 0)
            return r;
        bool ge = c->kernel_major > ma || (c->kernel_major == ma && c->kernel_minor >= mi);
        all = all && ge;
        any = any || ge;
    }
    *ret_applies = includes ? all : !any;
    return 0;
}

static int parse_op(struct ctx *c, const sw_json *v, const char *path, enum scmp_compare *ret)
{
    static const struct {
        const char *name;
        enum scmp_compare op;
    } ops[] = {
        {"SCMP_CMP_NE", SCMP_CMP_NE},
        {"SCMP_CMP_LT", SCMP_CMP_LT},
        {"SCMP_CMP_LE", SCMP_CMP_LE},
        {"SCMP_CMP_EQ", SCMP_CMP_EQ},
        {"SCMP_CMP_GE", SCMP_CMP_GE},
        {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    };
    if (!v)
        return bad(c, "%s: missing", path);
    const char *s = sw_json_get_string(v, NULL);
    if (!s)
        return bad(c, "%s: expected a string, got %s", path, type_of(v));
    for (size_t i = 0; i < SW_ARRAY_SIZE(ops); i++)
        if (strcmp(s, ops[i].name) == 0) {
            *ret = ops[i].op;
            return 0;
        }
    return bad(c, "%s: unknown operator %.64s", path, s);
}

/* args[]: up to six conditions. *ret_same_index when two name the same argument. */
static int parse_args(struct ctx *c, const sw_json *v, const char *path, struct scmp_arg_cmp *ret,
                      unsigned *ret_n, bool *ret_same_index)
{
    int r;
    char sub[256];
    *ret_n = 0;
    *ret_same_index = false;
    if (!v || sw_json_type_of(v) == SW_JSON_NULL)
        return 0;
    if ((r = want_type(c, v, SW_JSON_ARRAY, path)) < 0)
        return r;
    if (sw_json_count(v) > MAX_ARGS)
        return bad(c, "%s: more than %d argument conditions", path, MAX_ARGS);
    unsigned seen = 0;
    for (size_t i = 0; i < sw_json_count(v); i++) {
        const sw_json *a = sw_json_at(v, i);
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        if ((r = want_type(c, a, SW_JSON_OBJECT, sub)) < 0)
            return r;
        static const char *const keys[] = {"index", "value", "valueTwo", "op"};
        if ((r = check_keys(c, a, keys, SW_ARRAY_SIZE(keys), sub)) < 0)
            return r;
        uint64_t index, value = 0, value2 = 0;
        enum scmp_compare op = SCMP_CMP_EQ;
        snprintf(sub, sizeof(sub), "%s[%zu].index", path, i);
        if (!sw_json_get(a, "index"))
            return bad(c, "%s: missing", sub);
        if ((r = get_uint(c, sw_json_get(a, "index"), MAX_ARGS - 1, sub, &index)) < 0)
            return r;
        snprintf(sub, sizeof(sub), "%s[%zu].value", path, i);
        if (sw_json_get(a, "value") &&
            (r = get_uint(c, sw_json_get(a, "value"), UINT64_MAX, sub, &value)) < 0)
            return r;
        snprintf(sub, sizeof(sub), "%s[%zu].valueTwo", path, i);
        if (sw_json_get(a, "valueTwo") &&
            (r = get_uint(c, sw_json_get(a, "valueTwo"), UINT64_MAX, sub, &value2)) < 0)
            return r;
        snprintf(sub, sizeof(sub), "%s[%zu].op", path, i);
        if ((r = parse_op(c, sw_json_get(a, "op"), sub, &op)) < 0)
            return r;
        if (seen & (1u << index))
            *ret_same_index = true;
        seen |= 1u << index;
        /* MASKED_EQ: value is the mask, valueTwo the datum (Docker's layout). */
        ret[i] = (struct scmp_arg_cmp){
            .arg = (unsigned)index, .op = op, .datum_a = value, .datum_b = value2};
    }
    *ret_n = (unsigned)sw_json_count(v);
    return 0;
}

static int add_rule(struct ctx *c, scmp_filter_ctx f, const char *name, uint32_t action,
                    const struct scmp_arg_cmp *args, unsigned n, bool separate, const char *path)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* unknown to libseccomp here: skipped, as Docker does */
    int r = 0;
    if (n == 0 || !separate) {
        r = seccomp_rule_add_array(f, action, nr, n, n ? args : NULL);
    } else {
        /* libseccomp cannot AND two conditions on one argument: as runc does, each
         * condition becomes a rule of its own (either one matching applies the action). */
        for (unsigned i = 0; i < n && (r >= 0 || r == -EEXIST); i++)
            r = seccomp_rule_add_array(f, action, nr, 1, &args[i]);
    }
    if (r < 0 && r != -EEXIST && r != -EDOM)
        return bad(c, "%s: cannot add the rule for %.64s: %s", path, name, strerror(-r));
    return 0;
}

static int parse_syscall(struct ctx *c, scmp_filter_ctx f, const sw_json *e, size_t idx)
{
    int r;
    char path[64], sub[128];
    snprintf(path, sizeof(path), "syscalls[%zu]", idx);
    if ((r = want_type(c, e, SW_JSON_OBJECT, path)) < 0)
        return r;
    static const char *const keys[] = {"names", "name",    "action",   "errnoRet",
                                       "args",  "comment", "includes", "excludes"};
    if ((r = check_keys(c, e, keys, SW_ARRAY_SIZE(keys), path)) < 0)
        return r;
    const sw_json *names = sw_json_get(e, "names");
    const sw_json *name = sw_json_get(e, "name");
    snprintf(sub, sizeof(sub), "%s.names", path);
    if ((r = string_array(c, names, sub)) < 0)
        return r;
    snprintf(sub, sizeof(sub), "%s.name", path);
    if (name && (r = want_type(c, name, SW_JSON_STRING, sub)) < 0)
        return r;
    if (!sw_json_count(names) && !name)
        return bad(c, "%s: no names (give names or name)", path);
    const sw_json *comment = sw_json_get(e, "comment");
    snprintf(sub, sizeof(sub), "%s.comment", path);
    if (comment && (r = want_type(c, comment, SW_JSON_STRING, sub)) < 0)
        return r;

    uint32_t action;
    char apath[96], epath[96];
    snprintf(apath, sizeof(apath), "%s.action", path);
    snprintf(epath, sizeof(epath), "%s.errnoRet", path);
    if ((r = parse_action(c, sw_json_get(e, "action"), sw_json_get(e, "errnoRet"), apath, epath,
                          &action)) < 0)
        return r;
    struct scmp_arg_cmp args[MAX_ARGS];
    unsigned n_args;
    bool separate;
    snprintf(sub, sizeof(sub), "%s.args", path);
    if ((r = parse_args(c, sw_json_get(e, "args"), sub, args, &n_args, &separate)) < 0)
        return r;
    bool inc, exc;
    snprintf(sub, sizeof(sub), "%s.includes", path);
    if ((r = parse_filter(c, sw_json_get(e, "includes"), true, sub, &inc)) < 0)
        return r;
    snprintf(sub, sizeof(sub), "%s.excludes", path);
    if ((r = parse_filter(c, sw_json_get(e, "excludes"), false, sub, &exc)) < 0)
        return r;
    if (!inc || !exc || action == c->default_action)
        return 0; /* not for this task or host, or the default answers it anyway */

    if (name && (r = add_rule(c, f, sw_json_get_string(name, NULL), action, args, n_args, separate,
                              path)) < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(names); i++) {
        snprintf(sub, sizeof(sub), "%s.names[%zu]", path, i);
        r = add_rule(c, f, sw_json_get_string(sw_json_at(names, i), NULL), action, args, n_args,
                     separate, sub);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Top-level fields other than the arches and the syscalls. */
static int parse_top(struct ctx *c, const sw_json *root)
{
    int r;
    static const char *const keys[] = {"defaultAction", "defaultErrnoRet", "architectures",
                                       "archMap",       "syscalls",        "flags",
                                       "listenerPath",  "listenerMetadata"};
    if ((r = check_keys(c, root, keys, SW_ARRAY_SIZE(keys), "")) < 0)
        return r;
    if ((r = parse_action(c, sw_json_get(root, "defaultAction"),
                          sw_json_get(root, "defaultErrnoRet"), "defaultAction", "defaultErrnoRet",
                          &c->default_action)) < 0)
        return r;
    const sw_json *lp = sw_json_get(root, "listenerPath");
    if (lp && (r = want_type(c, lp, SW_JSON_STRING, "listenerPath")) < 0)
        return r;
    if (lp && *sw_json_get_string(lp, NULL))
        return bad(c, "listenerPath: seccomp agents are not supported");
    const sw_json *meta = sw_json_get(root, "listenerMetadata");
    if (meta && (r = want_type(c, meta, SW_JSON_STRING, "listenerMetadata")) < 0)
        return r;
    /* flags are validated; the filter is loaded without them (a task is single-threaded
     * when it loads, so TSYNC is moot; LOG and SPEC_ALLOW are not applied). */
    const sw_json *flags = sw_json_get(root, "flags");
    if ((r = string_array(c, flags, "flags")) < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(flags); i++) {
        const char *s = sw_json_get_string(sw_json_at(flags, i), NULL);
        if (strcmp(s, "SECCOMP_FILTER_FLAG_TSYNC") != 0 &&
            strcmp(s, "SECCOMP_FILTER_FLAG_LOG") != 0 &&
            strcmp(s, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") != 0)
            return bad(c, "flags[%zu]: unknown flag %.64s", i, s);
    }
    return 0;
}

static void ctx_releasep(scmp_filter_ctx *f)
{
    if (*f)
        seccomp_release(*f);
}

static void json_freep(sw_json **v)
{
    sw_json_free(*v);
}

int rt_seccomp_from_json(const char *json, size_t len, uint64_t caps, rt_seccomp **ret,
                         char *errmsg, size_t errmsg_size)
{
    struct ctx c = {.errmsg = errmsg, .errmsg_size = errmsg_size, .caps = caps};
    int r;
    if (len > PROFILE_MAX_BYTES)
        return bad(&c, "profile is %zu bytes, more than the %d allowed", len, PROFILE_MAX_BYTES);
    c.native = seccomp_arch_native();
    if (c.native == 0)
        return bad(&c, "this architecture is not supported by libseccomp");
    struct utsname u;
    if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &c.kernel_major, &c.kernel_minor) != 2)
        c.kernel_major = c.kernel_minor = 0;

    _cleanup_(json_freep) sw_json *root = NULL;
    struct sw_json_limits lim = {.max_bytes = PROFILE_MAX_BYTES, .max_depth = 16};
    char perr[200];
    r = sw_json_parse(json, len, &lim, &root, perr, sizeof(perr));
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return bad(&c, "not valid JSON: %s", perr);
    if ((r = want_type(&c, root, SW_JSON_OBJECT, "profile")) < 0)
        return r;
    if ((r = parse_top(&c, root)) < 0)
        return r;

    _cleanup_(ctx_releasep) scmp_filter_ctx f = seccomp_init(c.default_action);
    if (!f)
        return bad(&c, "seccomp_init failed");
    /* An ABI the profile does not list answers the default action, but never "allow": a
     * denylist must not be sidestepped through the 32-bit ABI. */
    uint32_t badarch = c.default_action == SCMP_ACT_ALLOW || c.default_action == SCMP_ACT_LOG
                           ? SCMP_ACT_ERRNO(EPERM)
                           : c.default_action;
    r = seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, badarch);
    if (r < 0)
        return bad(&c, "defaultAction: cannot be the bad-arch action: %s", strerror(-r));
    (void)seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if ((r = parse_arches(&c, root, f)) < 0)
        return r;

    const sw_json *calls = sw_json_get(root, "syscalls");
    if (calls && (r = want_type(&c, calls, SW_JSON_ARRAY, "syscalls")) < 0)
        return r;
    for (size_t i = 0; i < sw_json_count(calls); i++)
        if ((r = parse_syscall(&c, f, sw_json_at(calls, i), i)) < 0)
            return r;

    char eerr[200];
    /* As runc does: with a refusing default, calls newer than libseccomp answer ENOSYS. */
    bool enosys_new = c.default_action != SCMP_ACT_ALLOW && c.default_action != SCMP_ACT_LOG;
    r = rt__seccomp_export(f, enosys_new, ret, eerr, sizeof(eerr));
    if (r < 0)
        return bad(&c, "%s", eerr);
    return 0;
}
