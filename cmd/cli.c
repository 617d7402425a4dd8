/* Shared helpers of the command-line tools: aligned tables, a JSON writer, flag errors. */
#include "cmd/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

/* ------------------------------------------------------------------ tables */

#define TABLE_PADDING 3
#define TABLE_MIN_WIDTH 10

struct cli_table {
    size_t ncols;
    size_t nrows; /* including the header row */
    size_t cap;
    char **cells; /* nrows * ncols */
};

/* Length of the UTF-8 sequence starting at s, or 0 if it is not a valid one. */
static size_t utf8_seq_len(const unsigned char *s, uint32_t *ret_cp)
{
    uint32_t cp;
    size_t n;
    if (s[0] < 0x80) {
        *ret_cp = s[0];
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        cp = s[0] & 0x1f;
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        cp = s[0] & 0x0f;
        n = 3;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        cp = s[0] & 0x07;
        n = 4;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *ret_cp = cp;
    return n;
}

size_t cli_text_width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t w = 0;
    if (!s)
        return 0;
    while (*p) {
        uint32_t cp;
        size_t n = utf8_seq_len(p, &cp);
        p += n ? n : 1;
        w++;
    }
    return w;
}

int cli_table_create(size_t ncols, const char *const *headers, cli_table **ret)
{
    if (ncols == 0 || !headers)
        return -EINVAL;
    cli_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->ncols = ncols;
    int r = cli_table_add_row(t, headers);
    if (r < 0) {
        cli_table_free(t);
        return r;
    }
    *ret = t;
    return 0;
}

int cli_table_add_row(cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        if (cap > SIZE_MAX / sizeof(char *) / t->ncols)
            return -ENOMEM;
        char **n = realloc(t->cells, cap * t->ncols * sizeof(char *));
        if (!n)
            return -ENOMEM;
        t->cells = n;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "");
        if (!row[i]) {
            for (size_t k = 0; k < i; k++)
                free(row[k]);
            return -ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

size_t cli_table_rows(const cli_table *t)
{
    return t->nrows ? t->nrows - 1 : 0;
}

int cli_table_print(const cli_table *t, FILE *f)
{
    _cleanup_free_ size_t *width = calloc(t->ncols, sizeof(size_t));
    if (!width)
        return -ENOMEM;
    for (size_t c = 0; c + 1 < t->ncols; c++) {
        size_t w = 0;
        for (size_t r = 0; r < t->nrows; r++)
            w = SW_MAX(w, cli_text_width(t->cells[r * t->ncols + c]));
        width[c] = SW_MAX(w + TABLE_PADDING, (size_t)TABLE_MIN_WIDTH);
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            fputs(cell, f);
            if (c + 1 < t->ncols) {
                for (size_t pad = cli_text_width(cell); pad < width[c]; pad++)
                    fputc(' ', f);
            }
        }
        fputc('\n', f);
    }
    return ferror(f) ? -EIO : 0;
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* ------------------------------------------------------------------ JSON */

int cli_json_write_string(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        uint32_t cp;
        size_t n = utf8_seq_len(p, &cp);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
            continue;
        }
        switch (cp) {
            case '"':
                fputs("\\\"", f);
                break;
            case '\\':
                fputs("\\\\", f);
                break;
            case '\b':
                fputs("\\b", f);
                break;
            case '\f':
                fputs("\\f", f);
                break;
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '\t':
                fputs("\\t", f);
                break;
            default:
                if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029)
                    fprintf(f, "\\u%04" PRIx32, cp);
                else
                    fwrite(p, 1, n, f);
        }
        p += n;
    }
    fputc('"', f);
    return ferror(f) ? -EIO : 0;
}

static void json_fail(struct cli_json *j, int err)
{
    if (j->err == 0)
        j->err = err;
}

static void json_newline(struct cli_json *j)
{
    if (!j->pretty)
        return;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++)
        fputs("    ", j->f);
}

/* Called before any value: checks the position, writes the comma and indentation. */
static bool json_before_value(struct cli_json *j)
{
    if (j->err)
        return false;
    if (j->want_value) {
        j->want_value = false;
        return true;
    }
    if (j->depth == 0) {
        if (j->has_items[0]) { /* one top-level value only */
            json_fail(j, -EINVAL);
            return false;
        }
        j->has_items[0] = true;
        return true;
    }
    if (j->in_object[j->depth]) { /* a key is due */
        json_fail(j, -EINVAL);
        return false;
    }
    if (j->has_items[j->depth])
        fputc(',', j->f);
    j->has_items[j->depth] = true;
    json_newline(j);
    return true;
}

void cli_json_init(struct cli_json *j, FILE *f, bool pretty)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
    j->pretty = pretty;
}

static void json_begin(struct cli_json *j, bool object)
{
    if (!json_before_value(j))
        return;
    if (j->depth + 1 >= CLI_JSON_MAX_DEPTH) {
        json_fail(j, -EINVAL);
        return;
    }
    fputc(object ? '{' : '[', j->f);
    j->depth++;
    j->in_object[j->depth] = object;
    j->has_items[j->depth] = false;
}

static void json_end(struct cli_json *j, bool object)
{
    if (j->err)
        return;
    if (j->depth == 0 || j->in_object[j->depth] != object || j->want_value) {
        json_fail(j, -EINVAL);
        return;
    }
    bool had = j->has_items[j->depth];
    j->depth--;
    if (had)
        json_newline(j);
    fputc(object ? '}' : ']', j->f);
}

void cli_json_begin_object(struct cli_json *j)
{
    json_begin(j, true);
}

void cli_json_end_object(struct cli_json *j)
{
    json_end(j, true);
}

void cli_json_begin_array(struct cli_json *j)
{
    json_begin(j, false);
}

void cli_json_end_array(struct cli_json *j)
{
    json_end(j, false);
}

void cli_json_key(struct cli_json *j, const char *key)
{
    if (j->err)
        return;
    if (j->depth == 0 || !j->in_object[j->depth] || j->want_value || !key) {
        json_fail(j, -EINVAL);
        return;
    }
    if (j->has_items[j->depth])
        fputc(',', j->f);
    j->has_items[j->depth] = true;
    json_newline(j);
    cli_json_write_string(j->f, key);
    fputs(j->pretty ? ": " : ":", j->f);
    j->want_value = true;
}

void cli_json_string(struct cli_json *j, const char *s)
{
    if (!s) {
        cli_json_null(j);
        return;
    }
    if (json_before_value(j))
        cli_json_write_string(j->f, s);
}

void cli_json_uint(struct cli_json *j, uint64_t v)
{
    if (json_before_value(j))
        fprintf(j->f, "%" PRIu64, v);
}

void cli_json_int(struct cli_json *j, int64_t v)
{
    if (json_before_value(j))
        fprintf(j->f, "%" PRId64, v);
}

void cli_json_bool(struct cli_json *j, bool v)
{
    if (json_before_value(j))
        fputs(v ? "true" : "false", j->f);
}

void cli_json_null(struct cli_json *j)
{
    if (json_before_value(j))
        fputs("null", j->f);
}

void cli_json_kv_string(struct cli_json *j, const char *key, const char *s)
{
    cli_json_key(j, key);
    cli_json_string(j, s);
}

void cli_json_kv_uint(struct cli_json *j, const char *key, uint64_t v)
{
    cli_json_key(j, key);
    cli_json_uint(j, v);
}

void cli_json_kv_int(struct cli_json *j, const char *key, int64_t v)
{
    cli_json_key(j, key);
    cli_json_int(j, v);
}

void cli_json_kv_bool(struct cli_json *j, const char *key, bool v)
{
    cli_json_key(j, key);
    cli_json_bool(j, v);
}

int cli_json_finish(struct cli_json *j)
{
    if (j->err == 0 && (j->depth != 0 || j->want_value || !j->has_items[0]))
        json_fail(j, -EINVAL);
    if (j->err == 0) {
        fputc('\n', j->f);
        if (ferror(j->f))
            json_fail(j, -EIO);
    }
    return j->err;
}

/* ------------------------------------------------------------------ flags */

int cli_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    /* keep the message on one line whatever the user typed */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    bool has_cmd = cmd && cmd[0];
    fprintf(stderr, "%s: %s. See '%s%s%s --help'.\n", prog, msg, prog, has_cmd ? " " : "",
            has_cmd ? cmd : "");
    return CLI_EXIT_USAGE;
}

static const struct option *find_long(const struct option *longopts, const char *name, size_t len)
{
    for (const struct option *o = longopts; o && o->name; o++)
        if (strlen(o->name) >= len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

void cli_getopt_error(int c, char *const *argv, const struct option *longopts, char *buf,
                      size_t size)
{
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    bool is_long = false;
    size_t len = 0;
    int n;
    if (size == 0)
        return;
    /* optind only moves past an argument once it is used up, so argv[optind - 1] is the
     * offending word for long options but may be an earlier word for "-xq". */
    if (arg && arg[0] == '-' && arg[1] == '-' && arg[2]) {
        len = strcspn(arg, "=");
        const struct option *o = find_long(longopts, arg + 2, len - 2);
        is_long = optopt == 0 || (o && !o->flag && o->val == optopt);
    }
    if (is_long && c == ':')
        n = snprintf(buf, size, "flag needs an argument: %.*s", (int)len, arg);
    else if (is_long && optopt != 0 && arg[len] == '=')
        n = snprintf(buf, size, "flag does not take an argument: %.*s", (int)len, arg);
    else if (is_long)
        n = snprintf(buf, size, "unknown flag: %.*s", (int)len, arg);
    else if (c == ':')
        n = snprintf(buf, size, "flag needs an argument: -%c", optopt);
    else if (optopt > ' ' && optopt < 0x7f)
        n = snprintf(buf, size, "unknown shorthand flag: -%c", optopt);
    else
        n = snprintf(buf, size, "unknown flag");
    if (n < 0)
        buf[0] = '\0';
}

int cli_parse_choice(const char *value, const char *const *choices, size_t n)
{
    if (!value)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(value, choices[i]) == 0)
            return (int)i;
    return -EINVAL;
}

/* ------------------------------------------------------------------ values */

int cli_parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

/* digits[.digits] into an integer part and up to 9 fraction digits (nanos); the rest of
 * the string in *ret_end. */
static int parse_decimal(const char *s, uint64_t *ret_int, uint64_t *ret_nanos,
                         const char **ret_end)
{
    const char *p = s;
    uint64_t iv = 0, nanos = 0;
    bool digits = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (iv > (UINT64_MAX - d) / 10)
            return -ERANGE;
        iv = iv * 10 + d;
        digits = true;
    }
    if (*p == '.') {
        p++;
        uint64_t scale = 100000000;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale == 0)
                return -EINVAL; /* more than 9 decimals */
            nanos += (uint64_t)(*p - '0') * scale;
            scale /= 10;
            digits = true;
        }
    }
    if (!digits)
        return -EINVAL;
    *ret_int = iv;
    *ret_nanos = nanos;
    *ret_end = p;
    return 0;
}

int cli_parse_size(const char *s, int64_t *ret)
{
    uint64_t iv, nanos;
    const char *end;
    if (!s)
        return -EINVAL;
    int r = parse_decimal(s, &iv, &nanos, &end);
    if (r < 0)
        return r;
    static const char units[] = "bkmgtp";
    unsigned shift = 0;
    if (*end) {
        const char *u = strchr(units, *end | 0x20);
        if (!u || !(*end >= 'A' && *end <= 'z'))
            return -EINVAL;
        shift = (unsigned)(u - units) * 10;
        end++;
        if (shift && ((end[0] | 0x20) == 'i') && ((end[1] | 0x20) == 'b') && !end[2])
            end += 2;
        else if (shift && (end[0] | 0x20) == 'b' && !end[1])
            end++;
    }
    if (*end)
        return -EINVAL;
    if (iv > ((uint64_t)INT64_MAX >> shift))
        return -ERANGE;
    uint64_t v = iv << shift;
    /* the fraction: nanos/1e9 of the unit, rounded down to a byte */
    uint64_t frac = (uint64_t)(((unsigned __int128)nanos << shift) / 1000000000u);
    if (v > (uint64_t)INT64_MAX - frac)
        return -ERANGE;
    *ret = (int64_t)(v + frac);
    return 0;
}

int cli_parse_nano_cpus(const char *s, int64_t *ret)
{
    uint64_t iv, nanos;
    const char *end;
    if (!s)
        return -EINVAL;
    int r = parse_decimal(s, &iv, &nanos, &end);
    if (r < 0)
        return r;
    if (*end)
        return -EINVAL;
    if (iv > (uint64_t)INT64_MAX / 1000000000u - 1)
        return -ERANGE;
    uint64_t v = iv * 1000000000u + nanos;
    if (v == 0)
        return -EINVAL;
    *ret = (int64_t)v;
    return 0;
}

bool cli_name_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return false;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (n == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return n >= 1 && n <= 63;
}

void cli_fmt_ago(uint64_t then_ns, uint64_t now_ns, char *buf, size_t size)
{
    if (then_ns == 0) {
        snprintf(buf, size, "-");
        return;
    }
    uint64_t secs = now_ns > then_ns ? (now_ns - then_ns) / 1000000000u : 0;
    uint64_t mins = secs / 60, hours = (secs + 1800) / 3600;
    if (secs < 1)
        snprintf(buf, size, "Less than a second ago");
    else if (secs == 1)
        snprintf(buf, size, "1 second ago");
    else if (secs < 60)
        snprintf(buf, size, "%" PRIu64 " seconds ago", secs);
    else if (mins == 1)
        snprintf(buf, size, "About a minute ago");
    else if (mins < 60)
        snprintf(buf, size, "%" PRIu64 " minutes ago", mins);
    else if (hours == 1)
        snprintf(buf, size, "About an hour ago");
    else if (hours < 48)
        snprintf(buf, size, "%" PRIu64 " hours ago", hours);
    else if (hours < 24 * 7 * 2)
        snprintf(buf, size, "%" PRIu64 " days ago", hours / 24);
    else if (hours < 24 * 30 * 2)
        snprintf(buf, size, "%" PRIu64 " weeks ago", hours / 24 / 7);
    else if (hours < 24 * 365 * 2)
        snprintf(buf, size, "%" PRIu64 " months ago", hours / 24 / 30);
    else
        snprintf(buf, size, "%" PRIu64 " years ago", hours / 24 / 365);
}
