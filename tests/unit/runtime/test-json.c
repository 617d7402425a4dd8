/* Unit tests for common/json: valid documents and lookups, escapes and UTF-8, numbers,
 * every class of malformed input, the size/depth/node caps, and seeded garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/json.h"

static sw_json *parse_ok(const char *s)
{
    sw_json *v = NULL;
    char err[256] = "";
    int r = sw_json_parse(s, strlen(s), NULL, &v, err, sizeof(err));
    if (r < 0)
        fail_msg("parse of %s failed: %d %s", s, r, err);
    assert_non_null(v);
    return v;
}

/* Must fail with -EINVAL and a message containing want (if non-NULL). */
static void parse_bad_n(const char *s, size_t n, const char *want)
{
    sw_json *v = (sw_json *)0x1;
    char err[256] = "";
    int r = sw_json_parse(s, n, NULL, &v, err, sizeof(err));
    if (r != -EINVAL)
        fail_msg("parse of [%.*s] returned %d, want -EINVAL", (int)n, s, r);
    assert_ptr_equal(v, (sw_json *)0x1); /* ret untouched on failure */
    assert_true(err[0] != '\0');
    if (want && !strstr(err, want))
        fail_msg("parse of [%.*s]: message \"%s\" lacks \"%s\"", (int)n, s, err, want);
}

static void parse_bad(const char *s, const char *want)
{
    parse_bad_n(s, strlen(s), want);
}

static void test_valid_tree(void **state)
{
    sw_json *v = parse_ok(
        " {\"a\": [1, 2.5, \"x\", true, false, null, {}, []],\n"
        "  \"b\": {\"c\": -7}, \"\": \"empty key\"} \r\n\t");
    assert_int_equal(sw_json_type_of(v), SW_JSON_OBJECT);
    assert_int_equal(sw_json_count(v), 3);
    assert_string_equal(sw_json_key_at(v, 0), "a");
    assert_string_equal(sw_json_key_at(v, 1), "b");
    assert_null(sw_json_key_at(v, 3));
    const sw_json *a = sw_json_get(v, "a");
    assert_int_equal(sw_json_type_of(a), SW_JSON_ARRAY);
    assert_int_equal(sw_json_count(a), 8);
    int64_t i;
    double d;
    bool b;
    assert_true(sw_json_get_int64(sw_json_at(a, 0), &i));
    assert_int_equal(i, 1);
    assert_false(sw_json_get_int64(sw_json_at(a, 1), &i)); /* 2.5 is not an integer */
    assert_true(sw_json_get_double(sw_json_at(a, 1), &d));
    assert_true(d == 2.5);
    assert_string_equal(sw_json_get_string(sw_json_at(a, 2), NULL), "x");
    assert_true(sw_json_get_bool(sw_json_at(a, 3), &b) && b);
    assert_true(sw_json_get_bool(sw_json_at(a, 4), &b) && !b);
    assert_int_equal(sw_json_type_of(sw_json_at(a, 5)), SW_JSON_NULL);
    assert_int_equal(sw_json_type_of(sw_json_at(a, 6)), SW_JSON_OBJECT);
    assert_int_equal(sw_json_count(sw_json_at(a, 6)), 0);
    assert_null(sw_json_get(sw_json_at(a, 6), "x"));
    assert_int_equal(sw_json_type_of(sw_json_at(a, 7)), SW_JSON_ARRAY);
    assert_null(sw_json_at(a, 8));
    assert_true(sw_json_get_int64(sw_json_get(sw_json_get(v, "b"), "c"), &i));
    assert_int_equal(i, -7);
    assert_string_equal(sw_json_get_string(sw_json_get(v, ""), NULL), "empty key");
    assert_null(sw_json_get(v, "nope"));
    assert_null(sw_json_get(a, "a")); /* not an object */
    assert_null(sw_json_get_string(a, NULL));
    assert_false(sw_json_get_bool(NULL, &b));
    assert_string_equal(sw_json_type_name(SW_JSON_OBJECT), "object");
    sw_json_free(v);
    sw_json_free(NULL);
}

static void test_scalars_at_top(void **state)
{
    const char *docs[] = {"0", "\"s\"", "true", "null", " [ ] ", "-1e-3"};
    for (size_t k = 0; k < SW_ARRAY_SIZE(docs); k++)
        sw_json_free(parse_ok(docs[k]));
}

/* Lookups stay right in a large object (sorted index). */
static void test_many_keys(void **state)
{
    size_t n = 5000, cap = n * 24 + 16, o = 0;
    _cleanup_free_ char *s = malloc(cap);
    assert_non_null(s);
    s[o++] = '{';
    for (size_t k = 0; k < n; k++)
        o += (size_t)snprintf(s + o, cap - o, "%s\"k%zu\":%zu", k ? "," : "", (k * 7919) % n, k);
    s[o++] = '}';
    s[o] = '\0';
    sw_json *v = parse_ok(s);
    assert_int_equal(sw_json_count(v), n);
    for (size_t k = 0; k < n; k += 97) {
        char key[32];
        snprintf(key, sizeof(key), "k%zu", (k * 7919) % n);
        int64_t i;
        assert_true(sw_json_get_int64(sw_json_get(v, key), &i));
        assert_int_equal(i, (int64_t)k);
    }
    sw_json_free(v);
}

static void test_escapes(void **state)
{
    sw_json *v = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
    size_t len;
    const char *s = sw_json_get_string(v, &len);
    const char want[] = "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(s, want, len);
    sw_json_free(v);
    /* Raw UTF-8 passes through. */
    v = parse_ok("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    assert_string_equal(sw_json_get_string(v, NULL), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    sw_json_free(v);

    parse_bad("\"\\x\"", "unknown escape");
    parse_bad("\"\\u12zz\"", "hex digit");
    parse_bad("\"\\u12", "unterminated");
    parse_bad("\"\\u0000\"", "\\u0000");
    parse_bad("\"\\ud83d\"", "surrogate");
    parse_bad("\"\\ud83d\\u0041\"", "surrogate");
    parse_bad("\"\\ude00\"", "surrogate");
    parse_bad("\"a\tb\"", "control character");
    parse_bad("\"abc", "unterminated string");
    parse_bad("\"abc\\", "unterminated");
    parse_bad("'single'", "unexpected");
}

static void test_utf8(void **state)
{
    static const char *const bad[] = {
        "\"\xc0\x80\"",         /* overlong NUL */
        "\"\xc1\xbf\"",         /* overlong */
        "\"\xe0\x80\x80\"",     /* overlong 3-byte */
        "\"\xf0\x80\x80\x80\"", /* overlong 4-byte */
        "\"\xed\xa0\x80\"",     /* encoded surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xf5\x80\x80\x80\"", /* bad lead */
        "\"\xff\"",
        "\"\x80\"",         /* lone continuation */
        "\"\xe2\x82\"",     /* truncated */
        "\"\xe2\x28\xa1\"", /* bad continuation */
    };
    for (size_t k = 0; k < SW_ARRAY_SIZE(bad); k++)
        parse_bad(bad[k], "UTF-8");
    /* Edges that are valid. */
    sw_json_free(
        parse_ok("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""));
}

static void test_numbers(void **state)
{
    struct {
        const char *text;
        bool is_int, is_uint;
        int64_t i;
        uint64_t u;
        double d;
    } ok[] = {
        {"0", true, true, 0, 0, 0},
        {"-0", true, true, 0, 0, -0.0},
        {"42", true, true, 42, 42, 42},
        {"-42", true, false, -42, 0, -42},
        {"9223372036854775807", true, true, INT64_MAX, (uint64_t)INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", true, false, INT64_MIN, 0, -9223372036854775808.0},
        {"9223372036854775808", false, true, 0, (uint64_t)INT64_MAX + 1, 9223372036854775808.0},
        {"18446744073709551615", false, true, 0, UINT64_MAX, 18446744073709551615.0},
        {"18446744073709551616", false, false, 0, 0, 18446744073709551616.0},
        {"-9223372036854775809", false, false, 0, 0, -9223372036854775809.0},
        {"1.5", false, false, 0, 0, 1.5},
        {"-0.25e2", false, false, 0, 0, -25},
        {"1E3", false, false, 0, 0, 1000},
        {"1e+2", false, false, 0, 0, 100},
        {"2e-1", false, false, 0, 0, 0.2},
    };
    for (size_t k = 0; k < SW_ARRAY_SIZE(ok); k++) {
        sw_json *v = parse_ok(ok[k].text);
        int64_t i;
        uint64_t u;
        double d;
        assert_int_equal(sw_json_type_of(v), SW_JSON_NUMBER);
        assert_int_equal(sw_json_get_int64(v, &i), ok[k].is_int);
        if (ok[k].is_int)
            assert_true(i == ok[k].i);
        assert_int_equal(sw_json_get_uint64(v, &u), ok[k].is_uint);
        if (ok[k].is_uint)
            assert_true(u == ok[k].u);
        assert_true(sw_json_get_double(v, &d));
        assert_true(d == ok[k].d);
        sw_json_free(v);
    }
    static const char *const bad[] = {"01",  "-",        "+1",        "1.",    ".5",
                                      "1e",  "1e+",      "-a",        "0x10",  "1.2.3",
                                      "NaN", "Infinity", "-Infinity", "1e400", "--1"};
    for (size_t k = 0; k < SW_ARRAY_SIZE(bad); k++)
        parse_bad(bad[k], NULL);
    parse_bad("1e400", "out of range");
    parse_bad("01", "leading zero");
}

static void test_syntax_errors(void **state)
{
    parse_bad("", "end of input");
    parse_bad("   \n ", "end of input");
    parse_bad("[1,]", "unexpected");
    parse_bad("[1 2]", "expected ','");
    parse_bad("{\"a\" 1}", "expected ':'");
    parse_bad("{\"a\":1,}", "expected a string key");
    parse_bad("{a:1}", "expected a string key");
    parse_bad("{\"a\":1 \"b\":2}", "expected ','");
    parse_bad("[1", "end of input");
    parse_bad("{\"a\":", "end of input");
    parse_bad("[1]]", "trailing data");
    parse_bad("{} {}", "trailing data");
    parse_bad("tru", "unexpected");
    parse_bad("nul", "unexpected");
    parse_bad("truex", "trailing data");
    parse_bad("[true false]", "expected ','");
    parse_bad("// c\n1", "unexpected");
    parse_bad("/* c */ 1", "unexpected");
    parse_bad("\xef\xbb\xbf{}", "unexpected byte 0xef"); /* BOM */
    parse_bad("{\"a\":1,\"a\":2}", "duplicate key \"a\"");
    parse_bad("[{\"x\":[],\"y\":1,\"x\":2}]", "duplicate key");
    parse_bad("[1]\x0b", "trailing data");
    parse_bad_n("[1,\0 2]", 7, "unexpected byte 0x00");
    parse_bad_n("\"a\0b\"", 5, "control character");
    parse_bad_n("1\0", 2, "trailing data");
    /* The position is reported. */
    parse_bad("{\n  \"a\": [1,\n   2,,]}", "line 3, column 6");
}

static void test_caps(void **state)
{
    /* depth: 64 nested arrays pass, 65 do not */
    char deep[2 * 70 + 1];
    for (int d = 63; d <= 66; d++) {
        size_t o = 0;
        for (int k = 0; k < d; k++)
            deep[o++] = '[';
        for (int k = 0; k < d; k++)
            deep[o++] = ']';
        sw_json *v = NULL;
        char err[256] = "";
        int r = sw_json_parse(deep, o, NULL, &v, err, sizeof(err));
        if (d <= 64) {
            assert_int_equal(r, 0);
            sw_json_free(v);
        } else {
            assert_int_equal(r, -EINVAL);
            assert_non_null(strstr(err, "deeper than 64"));
        }
    }
    /* A nesting bomb: a megabyte of '[' fails fast without recursion. */
    size_t n = 1024 * 1024;
    _cleanup_free_ char *bomb = malloc(n);
    assert_non_null(bomb);
    memset(bomb, '[', n);
    parse_bad_n(bomb, n, "deeper than");
    memset(bomb, '{', n);
    parse_bad_n(bomb, n, "expected a string key");
    /* Objects of objects: depth counts both kinds. */
    {
        char s[600];
        size_t o = 0;
        for (int k = 0; k < 65; k++)
            o += (size_t)snprintf(s + o, sizeof(s) - o, "{\"a\":");
        s[o++] = '1';
        for (int k = 0; k < 65; k++)
            s[o++] = '}';
        parse_bad_n(s, o, "deeper than");
    }
    /* size */
    _cleanup_free_ char *big = malloc(n + 3);
    assert_non_null(big);
    big[0] = '"';
    memset(big + 1, 'a', n);
    big[n + 1] = '"';
    parse_bad_n(big, n + 2, "more than the 1048576 allowed");
    sw_json *v = NULL;
    struct sw_json_limits lim = {.max_bytes = n + 2};
    assert_int_equal(sw_json_parse(big, n + 2, &lim, &v, NULL, 0), 0);
    size_t len;
    assert_non_null(sw_json_get_string(v, &len));
    assert_int_equal(len, n);
    sw_json_free(v);
    /* node count */
    struct sw_json_limits few = {.max_nodes = 4};
    char err[256] = "";
    assert_int_equal(sw_json_parse("[1,2,3]", 7, &few, &v, err, sizeof(err)), 0);
    sw_json_free(v);
    assert_int_equal(sw_json_parse("[1,2,3,4]", 9, &few, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 4 values"));
    struct sw_json_limits shallow = {.max_depth = 2};
    assert_int_equal(sw_json_parse("[[1]]", 5, &shallow, &v, err, sizeof(err)), 0);
    sw_json_free(v);
    assert_int_equal(sw_json_parse("[[[1]]]", 7, &shallow, &v, err, sizeof(err)), -EINVAL);
    /* NULL errmsg is fine */
    assert_int_equal(sw_json_parse("[", 1, NULL, &v, NULL, 0), -EINVAL);
}

/* Deterministic pseudo-random inputs: random bytes, and mutations of a valid document.
 * Every parse either fails cleanly with -EINVAL and a message, or gives a tree that can be
 * walked and freed (ASan watches for the rest). */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static size_t walk(const sw_json *v, unsigned depth)
{
    assert_true(depth <= 64);
    size_t n = 1;
    for (size_t i = 0; i < sw_json_count(v); i++) {
        if (sw_json_type_of(v) == SW_JSON_OBJECT)
            assert_ptr_equal(sw_json_get(v, sw_json_key_at(v, i)), sw_json_at(v, i));
        n += walk(sw_json_at(v, i), depth + 1);
    }
    return n;
}

static void try_parse(const char *buf, size_t len, size_t *n_ok)
{
    sw_json *v = NULL;
    char err[256] = "";
    int r = sw_json_parse(buf, len, NULL, &v, err, sizeof(err));
    if (r == 0) {
        (*n_ok)++;
        walk(v, 0);
        sw_json_free(v);
    } else {
        assert_int_equal(r, -EINVAL);
        assert_true(strncmp(err, "line ", 5) == 0);
    }
}

static void test_garbage(void **state)
{
    static const char seed[] =
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\",\"w\\u00e9\"],"
        "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1.5e3,\"op\":\"x\"}]},"
        "[true,false,null,-0,{}]]}";
    static const char alphabet[] = "{}[]\",:\\u0123456789abcdefeE+-.tnrl \n\x80\xc3\xe2\xf0";
    char buf[512];
    size_t n_ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len;
        if (iter % 2 == 0) {
            len = next_rand() % 64;
            for (size_t k = 0; k < len; k++)
                buf[k] = iter % 4 == 0 ? (char)next_rand()
                                       : alphabet[next_rand() % (sizeof(alphabet) - 1)];
        } else {
            len = sizeof(seed) - 1;
            memcpy(buf, seed, len);
            int muts = 1 + (int)(next_rand() % 4);
            for (int m = 0; m < muts; m++) {
                size_t at = next_rand() % len;
                switch (next_rand() % 3) {
                    case 0: /* replace */
                        buf[at] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
                        break;
                    case 1: /* delete */
                        memmove(buf + at, buf + at + 1, len - at - 1);
                        len--;
                        break;
                    default: /* truncate */
                        len = at;
                        break;
                }
                if (len == 0)
                    break;
            }
        }
        try_parse(buf, len, &n_ok);
    }
    try_parse(seed, sizeof(seed) - 1, &n_ok);
    print_message("garbage: %zu of 20001 inputs parsed\n", n_ok);
    assert_true(n_ok >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tree),    cmocka_unit_test(test_scalars_at_top),
        cmocka_unit_test(test_many_keys),     cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_utf8),          cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_syntax_errors), cmocka_unit_test(test_caps),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
