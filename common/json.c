/* A small, strict JSON parser: iterative (an explicit stack, no recursion), with caps on
 * size, depth and node count, and full UTF-8 validation. */
#include "common/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

#define DEFAULT_MAX_BYTES (1024 * 1024)
#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_NODES 262144

struct sw_json {
    enum sw_json_type type;
    union {
        bool boolean;
        struct {
            double d;
            int64_t i;
            uint64_t u;
            bool is_int;  /* integer text that fits int64 */
            bool is_uint; /* integer text that fits uint64 */
        } num;
        struct {
            char *s;
            size_t len;
        } str;
        struct {
            struct sw_json *items;
            char **keys;      /* objects only */
            uint32_t *sorted; /* objects only: indexes in key order, for lookups */
            size_t n;
        } c;
    } u;
};

/* ------------------------------------------------------------------ tree */

static void value_finish(struct sw_json *v)
{
    /* Depth is capped at parse time, so this recursion is bounded by max_depth. */
    switch (v->type) {
        case SW_JSON_STRING:
            free(v->u.str.s);
            break;
        case SW_JSON_ARRAY:
        case SW_JSON_OBJECT:
            for (size_t i = 0; i < v->u.c.n; i++) {
                value_finish(&v->u.c.items[i]);
                if (v->u.c.keys)
                    free(v->u.c.keys[i]);
            }
            free(v->u.c.items);
            free(v->u.c.keys);
            free(v->u.c.sorted);
            break;
        default:
            break;
    }
    v->type = SW_JSON_NULL;
}

void sw_json_free(sw_json *v)
{
    if (!v)
        return;
    value_finish(v);
    free(v);
}

enum sw_json_type sw_json_type_of(const sw_json *v)
{
    return v ? v->type : SW_JSON_NULL;
}

const char *sw_json_type_name(enum sw_json_type t)
{
    switch (t) {
        case SW_JSON_NULL:
            return "null";
        case SW_JSON_BOOL:
            return "boolean";
        case SW_JSON_NUMBER:
            return "number";
        case SW_JSON_STRING:
            return "string";
        case SW_JSON_ARRAY:
            return "array";
        case SW_JSON_OBJECT:
            return "object";
    }
    return "?";
}

size_t sw_json_count(const sw_json *v)
{
    return v && (v->type == SW_JSON_ARRAY || v->type == SW_JSON_OBJECT) ? v->u.c.n : 0;
}

const sw_json *sw_json_at(const sw_json *v, size_t i)
{
    return i < sw_json_count(v) ? &v->u.c.items[i] : NULL;
}

const char *sw_json_key_at(const sw_json *v, size_t i)
{
    return v && v->type == SW_JSON_OBJECT && i < v->u.c.n ? v->u.c.keys[i] : NULL;
}

const sw_json *sw_json_get(const sw_json *v, const char *key)
{
    if (!v || v->type != SW_JSON_OBJECT || !key)
        return NULL;
    size_t lo = 0, hi = v->u.c.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t idx = v->u.c.sorted[mid];
        int c = strcmp(key, v->u.c.keys[idx]);
        if (c == 0)
            return &v->u.c.items[idx];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool sw_json_get_bool(const sw_json *v, bool *ret)
{
    if (!v || v->type != SW_JSON_BOOL)
        return false;
    *ret = v->u.boolean;
    return true;
}

bool sw_json_get_int64(const sw_json *v, int64_t *ret)
{
    if (!v || v->type != SW_JSON_NUMBER || !v->u.num.is_int)
        return false;
    *ret = v->u.num.i;
    return true;
}

bool sw_json_get_uint64(const sw_json *v, uint64_t *ret)
{
    if (!v || v->type != SW_JSON_NUMBER || !v->u.num.is_uint)
        return false;
    *ret = v->u.num.u;
    return true;
}

bool sw_json_get_double(const sw_json *v, double *ret)
{
    if (!v || v->type != SW_JSON_NUMBER)
        return false;
    *ret = v->u.num.d;
    return true;
}

const char *sw_json_get_string(const sw_json *v, size_t *ret_len)
{
    if (!v || v->type != SW_JSON_STRING)
        return NULL;
    if (ret_len)
        *ret_len = v->u.str.len;
    return v->u.str.s;
}

/* ------------------------------------------------------------------ parser */

struct parser {
    const char *p;
    size_t len, pos;
    size_t nodes, max_nodes;
    char *errmsg;
    size_t errmsg_size;
};

/* An open array or object: its finished children so far. */
struct frame {
    enum sw_json_type type;
    struct sw_json *items;
    char **keys;
    size_t n, cap;
    char *key; /* objects: the key read for the value being parsed */
};

static int fail(struct parser *ps, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parser *ps, size_t at, const char *fmt, ...)
{
    if (!ps->errmsg || !ps->errmsg_size)
        return -EINVAL;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < ps->len; i++) {
        if (ps->p[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)ps->p[i] & 0xC0) != 0x80) {
            col++; /* count characters, not UTF-8 continuation bytes */
        }
    }
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(ps->errmsg, ps->errmsg_size, "line %zu, column %zu: %s", line, col, what);
    return -EINVAL;
}

static void skip_ws(struct parser *ps)
{
    while (ps->pos < ps->len) {
        char c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

static int peek(const struct parser *ps)
{
    return ps->pos < ps->len ? (unsigned char)ps->p[ps->pos] : -1;
}

static int count_node(struct parser *ps)
{
    if (++ps->nodes > ps->max_nodes)
        return fail(ps, ps->pos, "more than %zu values in the document", ps->max_nodes);
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0; /* continuation byte, overlong 2-byte lead, or beyond U+10FFFF */
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0; /* overlong or out of range */
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0; /* UTF-16 surrogates are not characters */
    return n;
}

static int hex4(struct parser *ps, size_t at, uint32_t *ret)
{
    if (ps->len - at < 4)
        return fail(ps, at, "truncated \\u escape");
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        char c = ps->p[at + i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return fail(ps, at + i, "bad hex digit in \\u escape");
    }
    *ret = v;
    return 0;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At a '"': read the string into a fresh NUL-terminated buffer. */
static int parse_string(struct parser *ps, char **ret, size_t *ret_len)
{
    size_t start = ps->pos++;
    /* Decoded text is never longer than the source. */
    size_t end = start + 1;
    while (end < ps->len && ps->p[end] != '"')
        end += ps->p[end] == '\\' ? 2 : 1;
    if (end >= ps->len)
        return fail(ps, start, "unterminated string");
    _cleanup_free_ char *out = malloc(end - start);
    if (!out)
        return -ENOMEM;
    size_t o = 0;
    for (;;) {
        if (ps->pos >= ps->len)
            return fail(ps, start, "unterminated string");
        unsigned char c = (unsigned char)ps->p[ps->pos];
        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c < 0x20)
            return fail(ps, ps->pos, "control character 0x%02x in a string", c);
        if (c != '\\') {
            size_t n = utf8_seq((const unsigned char *)ps->p + ps->pos, ps->len - ps->pos);
            if (n == 0)
                return fail(ps, ps->pos, "invalid UTF-8 in a string");
            memcpy(out + o, ps->p + ps->pos, n);
            o += n;
            ps->pos += n;
            continue;
        }
        size_t esc = ps->pos++;
        if (ps->pos >= ps->len)
            return fail(ps, esc, "unterminated escape");
        char e = ps->p[ps->pos++];
        switch (e) {
            case '"':
            case '\\':
            case '/':
                out[o++] = e;
                break;
            case 'b':
                out[o++] = '\b';
                break;
            case 'f':
                out[o++] = '\f';
                break;
            case 'n':
                out[o++] = '\n';
                break;
            case 'r':
                out[o++] = '\r';
                break;
            case 't':
                out[o++] = '\t';
                break;
            case 'u': {
                uint32_t cp;
                int r = hex4(ps, ps->pos, &cp);
                if (r < 0)
                    return r;
                ps->pos += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(ps, esc, "lone low surrogate \\u%04x", cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (ps->len - ps->pos < 6 || ps->p[ps->pos] != '\\' ||
                        ps->p[ps->pos + 1] != 'u')
                        return fail(ps, esc, "high surrogate \\u%04x without a low one", cp);
                    r = hex4(ps, ps->pos + 2, &lo);
                    if (r < 0)
                        return r;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(ps, esc, "high surrogate \\u%04x without a low one", cp);
                    ps->pos += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0)
                    return fail(ps, esc, "\\u0000 is not allowed in a string");
                o += put_utf8(out + o, cp);
                break;
            }
            default:
                return fail(ps, esc, "unknown escape \\%c", e >= 0x20 && e < 0x7f ? e : '?');
        }
    }
    out[o] = '\0';
    *ret = TAKE_PTR(out);
    *ret_len = o;
    return 0;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *ps, struct sw_json *v)
{
    size_t start = ps->pos;
    bool neg = false, integer = true;
    if (peek(ps) == '-') {
        neg = true;
        ps->pos++;
    }
    if (!is_digit(peek(ps)))
        return fail(ps, start, "bad number");
    uint64_t mag = 0;
    bool overflow = false;
    if (peek(ps) == '0') {
        ps->pos++;
        if (is_digit(peek(ps)))
            return fail(ps, start, "leading zero in a number");
    } else {
        while (is_digit(peek(ps))) {
            unsigned d = (unsigned)(peek(ps) - '0');
            if (mag > (UINT64_MAX - d) / 10)
                overflow = true;
            else
                mag = mag * 10 + d;
            ps->pos++;
        }
    }
    if (peek(ps) == '.') {
        integer = false;
        ps->pos++;
        if (!is_digit(peek(ps)))
            return fail(ps, start, "bad number: no digit after '.'");
        while (is_digit(peek(ps)))
            ps->pos++;
    }
    if (peek(ps) == 'e' || peek(ps) == 'E') {
        integer = false;
        ps->pos++;
        if (peek(ps) == '+' || peek(ps) == '-')
            ps->pos++;
        if (!is_digit(peek(ps)))
            return fail(ps, start, "bad number: no digit in the exponent");
        while (is_digit(peek(ps)))
            ps->pos++;
    }
    size_t n = ps->pos - start;
    char buf[64];
    _cleanup_free_ char *big = NULL;
    char *txt = buf;
    if (n >= sizeof(buf)) {
        big = malloc(n + 1);
        if (!big)
            return -ENOMEM;
        txt = big;
    }
    memcpy(txt, ps->p + start, n);
    txt[n] = '\0';
    /* The daemon never calls setlocale, so strtod reads '.' as the decimal point. */
    errno = 0;
    double d = strtod(txt, NULL);
    if (!isfinite(d))
        return fail(ps, start, "number out of range");
    v->type = SW_JSON_NUMBER;
    v->u.num.d = d;
    if (integer && !overflow) {
        if (!neg) {
            v->u.num.is_uint = true;
            v->u.num.u = mag;
            if (mag <= (uint64_t)INT64_MAX) {
                v->u.num.is_int = true;
                v->u.num.i = (int64_t)mag;
            }
        } else if (mag <= (uint64_t)INT64_MAX + 1) {
            v->u.num.is_int = true;
            v->u.num.i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            if (mag == 0) {
                v->u.num.is_uint = true; /* "-0" */
                v->u.num.u = 0;
            }
        }
    }
    return 0;
}

static int parse_literal(struct parser *ps, struct sw_json *v)
{
    static const struct {
        const char *word;
        enum sw_json_type type;
        bool b;
    } lits[] = {{"true", SW_JSON_BOOL, true},
                {"false", SW_JSON_BOOL, false},
                {"null", SW_JSON_NULL, false}};
    for (size_t i = 0; i < SW_ARRAY_SIZE(lits); i++) {
        size_t n = strlen(lits[i].word);
        if (ps->len - ps->pos >= n && memcmp(ps->p + ps->pos, lits[i].word, n) == 0) {
            ps->pos += n;
            v->type = lits[i].type;
            v->u.boolean = lits[i].b;
            return 0;
        }
    }
    int c = peek(ps);
    if (c >= 0x20 && c < 0x7f)
        return fail(ps, ps->pos, "unexpected '%c'", c);
    return fail(ps, ps->pos, "unexpected byte 0x%02x", c & 0xff);
}

static int frame_push_child(struct frame *f, struct sw_json *v)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct sw_json *items = realloc(f->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        f->items = items;
        if (f->type == SW_JSON_OBJECT) {
            char **keys = realloc(f->keys, cap * sizeof(*keys));
            if (!keys)
                return -ENOMEM;
            f->keys = keys;
        }
        f->cap = cap;
    }
    f->items[f->n] = *v;
    if (f->type == SW_JSON_OBJECT)
        f->keys[f->n] = TAKE_PTR(f->key);
    f->n++;
    v->type = SW_JSON_NULL; /* moved */
    return 0;
}

static void frame_finish(struct frame *f)
{
    for (size_t i = 0; i < f->n; i++) {
        value_finish(&f->items[i]);
        if (f->keys)
            free(f->keys[i]);
    }
    free(f->items);
    free(f->keys);
    free(f->key);
    memset(f, 0, sizeof(*f));
}

static int cmp_key_idx(const void *a, const void *b, void *keys)
{
    char **k = keys;
    return strcmp(k[*(const uint32_t *)a], k[*(const uint32_t *)b]);
}

/* Close frame f into v: objects get their sorted index and are checked for duplicates. */
static int frame_close(struct parser *ps, struct frame *f, size_t at, struct sw_json *v)
{
    uint32_t *sorted = NULL;
    if (f->type == SW_JSON_OBJECT && f->n > 0) {
        sorted = malloc(f->n * sizeof(*sorted));
        if (!sorted)
            return -ENOMEM;
        for (size_t i = 0; i < f->n; i++)
            sorted[i] = (uint32_t)i;
        qsort_r(sorted, f->n, sizeof(*sorted), cmp_key_idx, f->keys);
        for (size_t i = 1; i < f->n; i++)
            if (strcmp(f->keys[sorted[i - 1]], f->keys[sorted[i]]) == 0) {
                int r = fail(ps, at, "duplicate key \"%.64s\" in an object", f->keys[sorted[i]]);
                free(sorted);
                return r;
            }
    }
    memset(v, 0, sizeof(*v));
    v->type = f->type;
    v->u.c.items = f->items;
    v->u.c.keys = f->keys;
    v->u.c.sorted = sorted;
    v->u.c.n = f->n;
    f->items = NULL;
    f->keys = NULL;
    f->n = f->cap = 0;
    return 0;
}

/* After '{' or ',' in an object: read "key" and ':' into f->key. */
static int parse_key(struct parser *ps, struct frame *f)
{
    skip_ws(ps);
    if (peek(ps) != '"')
        return fail(ps, ps->pos, "expected a string key in an object");
    size_t klen;
    int r = parse_string(ps, &f->key, &klen);
    if (r < 0)
        return r;
    skip_ws(ps);
    if (peek(ps) != ':')
        return fail(ps, ps->pos, "expected ':' after an object key");
    ps->pos++;
    return 0;
}

static int parse_doc(struct parser *ps, struct frame *stack, unsigned max_depth,
                     struct sw_json *root)
{
    unsigned depth = 0;
    struct sw_json cur;
    int r;
    for (;;) {
        /* A value starts here. */
        memset(&cur, 0, sizeof(cur));
        skip_ws(ps);
        r = count_node(ps);
        if (r < 0)
            return r;
        int c = peek(ps);
        if (c == '{' || c == '[') {
            if (depth >= max_depth)
                return fail(ps, ps->pos, "nested deeper than %u levels", max_depth);
            struct frame *f = &stack[depth++];
            memset(f, 0, sizeof(*f));
            f->type = c == '{' ? SW_JSON_OBJECT : SW_JSON_ARRAY;
            size_t open = ps->pos++;
            skip_ws(ps);
            if (peek(ps) == (c == '{' ? '}' : ']')) {
                ps->pos++;
                r = frame_close(ps, f, open, &cur);
                depth--;
                if (r < 0)
                    return r;
            } else {
                if (f->type == SW_JSON_OBJECT && (r = parse_key(ps, f)) < 0)
                    return r;
                continue; /* parse the first member */
            }
        } else if (c == '"') {
            cur.type = SW_JSON_STRING;
            r = parse_string(ps, &cur.u.str.s, &cur.u.str.len);
            if (r < 0)
                return r;
        } else if (c == '-' || is_digit(c)) {
            r = parse_number(ps, &cur);
            if (r < 0)
                return r;
        } else if (c < 0) {
            return fail(ps, ps->pos, "unexpected end of input");
        } else {
            r = parse_literal(ps, &cur);
            if (r < 0)
                return r;
        }

        /* cur is complete: hand it to its container, closing containers as they end. */
        for (;;) {
            if (depth == 0) {
                skip_ws(ps);
                if (ps->pos != ps->len) {
                    value_finish(&cur);
                    return fail(ps, ps->pos, "trailing data after the document");
                }
                *root = cur;
                return 0;
            }
            struct frame *f = &stack[depth - 1];
            r = frame_push_child(f, &cur);
            if (r < 0) {
                value_finish(&cur);
                return r;
            }
            skip_ws(ps);
            c = peek(ps);
            if (c == ',') {
                ps->pos++;
                if (f->type == SW_JSON_OBJECT && (r = parse_key(ps, f)) < 0)
                    return r;
                break; /* next member */
            }
            if (c == (f->type == SW_JSON_OBJECT ? '}' : ']')) {
                size_t at = ps->pos++;
                r = frame_close(ps, f, at, &cur);
                if (r < 0)
                    return r;
                depth--;
                continue;
            }
            if (c < 0)
                return fail(ps, ps->pos, "unexpected end of input in an %s",
                            sw_json_type_name(f->type));
            return fail(ps, ps->pos, "expected ',' or '%c' in an %s",
                        f->type == SW_JSON_OBJECT ? '}' : ']', sw_json_type_name(f->type));
        }
    }
}

int sw_json_parse(const char *text, size_t len, const struct sw_json_limits *lim, sw_json **ret,
                  char *errmsg, size_t errmsg_size)
{
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
    unsigned max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
    size_t max_nodes = lim && lim->max_nodes ? lim->max_nodes : DEFAULT_MAX_NODES;
    if (max_nodes > UINT32_MAX)
        max_nodes = UINT32_MAX;
    struct parser ps = {.p = text,
                        .len = len,
                        .max_nodes = max_nodes,
                        .errmsg = errmsg,
                        .errmsg_size = errmsg_size};
    if (!text && len)
        return -EINVAL;
    if (len > max_bytes) {
        if (errmsg && errmsg_size)
            snprintf(errmsg, errmsg_size, "input is %zu bytes, more than the %zu allowed", len,
                     max_bytes);
        return -EINVAL;
    }
    struct frame *stack = calloc(max_depth, sizeof(*stack));
    if (!stack)
        return -ENOMEM;
    sw_json *root = calloc(1, sizeof(*root));
    if (!root) {
        free(stack);
        return -ENOMEM;
    }
    int r = parse_doc(&ps, stack, max_depth, root);
    for (unsigned i = 0; i < max_depth; i++)
        frame_finish(&stack[i]);
    free(stack);
    if (r < 0) {
        sw_json_free(root);
        return r;
    }
    *ret = root;
    return 0;
}
