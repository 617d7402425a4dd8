/* Unit tests of cmd/cli.c: JSON string escaping and writer, table alignment, flag errors,
 * sizes, CPUs, names and "ago" times. */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/cli.h"

/* A memory stream; call out_take to get the text written so far. */
struct out {
    char *buf;
    size_t len;
    FILE *f;
};

static void out_open(struct out *o)
{
    o->buf = NULL;
    o->len = 0;
    o->f = open_memstream(&o->buf, &o->len);
    assert_non_null(o->f);
}

static char *out_take(struct out *o)
{
    assert_int_equal(fclose(o->f), 0);
    o->f = NULL;
    return o->buf;
}

static char *escape(const char *s)
{
    struct out o;
    out_open(&o);
    assert_int_equal(cli_json_write_string(o.f, s), 0);
    return out_take(&o);
}

static void test_json_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", "\"\""},
        {"plain", "\"plain\""},
        {"a\"b", "\"a\\\"b\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\""},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3",
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3\""},
        {"\xe2\x80\xa8|\xe2\x80\xa9", "\"\\u2028|\\u2029\""},
        /* invalid UTF-8: a lone continuation byte, a truncated sequence, an overlong '/',
         * a surrogate, a byte that never appears */
        {"a\x80z", "\"a\\ufffdz\""},
        {"\xc3", "\"\\ufffd\""},
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
        {"\xff", "\"\\ufffd\""},
        {"</script>", "\"</script>\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = escape(cases[i].in);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
}

static void test_json_document(void **state)
{
    (void)state;
    struct out o;
    out_open(&o);
    struct cli_json j;
    cli_json_init(&j, o.f, false);
    cli_json_begin_array(&j);
    cli_json_begin_object(&j);
    cli_json_kv_string(&j, "id", "abc");
    cli_json_kv_string(&j, "k\"ey", "v\n");
    cli_json_kv_uint(&j, "n", 18446744073709551615ULL);
    cli_json_kv_int(&j, "i", -5);
    cli_json_kv_bool(&j, "b", true);
    cli_json_kv_string(&j, "nul", NULL);
    cli_json_key(&j, "empty");
    cli_json_begin_object(&j);
    cli_json_end_object(&j);
    cli_json_key(&j, "list");
    cli_json_begin_array(&j);
    cli_json_uint(&j, 1);
    cli_json_uint(&j, 2);
    cli_json_end_array(&j);
    cli_json_end_object(&j);
    cli_json_end_array(&j);
    assert_int_equal(cli_json_finish(&j), 0);
    char *s = out_take(&o);
    assert_string_equal(s,
                        "[{\"id\":\"abc\",\"k\\\"ey\":\"v\\n\",\"n\":18446744073709551615,"
                        "\"i\":-5,\"b\":true,\"nul\":null,\"empty\":{},\"list\":[1,2]}]\n");
    free(s);
}

static void test_json_pretty(void **state)
{
    (void)state;
    struct out o;
    out_open(&o);
    struct cli_json j;
    cli_json_init(&j, o.f, true);
    cli_json_begin_array(&j);
    cli_json_begin_object(&j);
    cli_json_kv_string(&j, "a", "x");
    cli_json_key(&j, "l");
    cli_json_begin_array(&j);
    cli_json_end_array(&j);
    cli_json_end_object(&j);
    cli_json_end_array(&j);
    assert_int_equal(cli_json_finish(&j), 0);
    char *s = out_take(&o);
    assert_string_equal(s, "[\n    {\n        \"a\": \"x\",\n        \"l\": []\n    }\n]\n");
    free(s);
}

static int json_misuse(int which)
{
    struct out o;
    out_open(&o);
    struct cli_json j;
    cli_json_init(&j, o.f, false);
    switch (which) {
        case 0: /* value where a key is due */
            cli_json_begin_object(&j);
            cli_json_string(&j, "v");
            cli_json_end_object(&j);
            break;
        case 1: /* unbalanced */
            cli_json_begin_array(&j);
            break;
        case 2: /* wrong closer */
            cli_json_begin_array(&j);
            cli_json_end_object(&j);
            break;
        case 3: /* key without value */
            cli_json_begin_object(&j);
            cli_json_key(&j, "k");
            cli_json_end_object(&j);
            break;
        case 4: /* two top-level values */
            cli_json_uint(&j, 1);
            cli_json_uint(&j, 2);
            break;
        case 5: /* nothing */
            break;
        case 6: /* key inside an array */
            cli_json_begin_array(&j);
            cli_json_key(&j, "k");
            cli_json_end_array(&j);
            break;
        default: /* too deep */
            for (int i = 0; i < CLI_JSON_MAX_DEPTH + 1; i++)
                cli_json_begin_array(&j);
            for (int i = 0; i < CLI_JSON_MAX_DEPTH + 1; i++)
                cli_json_end_array(&j);
            break;
    }
    int r = cli_json_finish(&j);
    free(out_take(&o));
    return r;
}

static void test_json_misuse(void **state)
{
    (void)state;
    for (int i = 0; i <= 7; i++)
        assert_int_equal(json_misuse(i), -EINVAL);
}

static void test_table_alignment(void **state)
{
    (void)state;
    static const char *const headers[] = {"ID", "HOSTNAME", "STATUS"};
    cli_table *t = NULL;
    assert_int_equal(cli_table_create(3, headers, &t), 0);
    const char *r1[] = {"abcdefghijklmnopqrstuvwxy", "h\xc3\xa9llo", "Ready"};
    const char *r2[] = {"z", NULL, "Down"};
    assert_int_equal(cli_table_add_row(t, r1), 0);
    assert_int_equal(cli_table_add_row(t, r2), 0);
    assert_int_equal(cli_table_rows(t), 2);
    struct out o;
    out_open(&o);
    assert_int_equal(cli_table_print(t, o.f), 0);
    cli_table_free(t);
    char *s = out_take(&o);
    /* ID column: 25 + 3 = 28; HOSTNAME: max(8 + 3, 10) = 11 display columns, and "héllo"
     * is 5 columns though 6 bytes; the last column is not padded. */
    assert_string_equal(s,
                        "ID                          HOSTNAME   STATUS\n"
                        "abcdefghijklmnopqrstuvwxy   h\xc3\xa9llo      Ready\n"
                        "z                                      Down\n");
    free(s);
}

static void test_table_min_width(void **state)
{
    (void)state;
    static const char *const headers[] = {"A", "B"};
    cli_table *t = NULL;
    assert_int_equal(cli_table_create(2, headers, &t), 0);
    struct out o;
    out_open(&o);
    assert_int_equal(cli_table_print(t, o.f), 0);
    cli_table_free(t);
    char *s = out_take(&o);
    assert_string_equal(s, "A         B\n");
    free(s);
    assert_int_equal(cli_table_create(0, headers, &t), -EINVAL);
    cli_table_free(NULL);
}

static void test_text_width(void **state)
{
    (void)state;
    assert_int_equal(cli_text_width(""), 0);
    assert_int_equal(cli_text_width(NULL), 0);
    assert_int_equal(cli_text_width("abc"), 3);
    assert_int_equal(cli_text_width("\xe2\x82\xac\xe2\x82\xac"), 2);
    assert_int_equal(cli_text_width("\xff\xfe"), 2);
}

/* Run getopt_long on a command line and describe its first error. */
static void getopt_err(const char *optstring, const char *const *words, char *buf, size_t size)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    char *argv[8];
    int argc = 0;
    for (; words[argc]; argc++)
        argv[argc] = (char *)words[argc];
    argv[argc] = NULL;
    int c;
    optind = 0;
    opterr = 0;
    buf[0] = '\0';
    while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            cli_getopt_error(c, argv, opts, buf, size);
            return;
        }
    }
}

static void test_getopt_error(void **state)
{
    (void)state;
    char buf[128];
    getopt_err(":q", (const char *const[]){"ls", "--bogus", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "unknown flag: --bogus");
    getopt_err(":q", (const char *const[]){"ls", "--bogus=1", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "unknown flag: --bogus");
    getopt_err(":q", (const char *const[]){"ls", "--format", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "flag needs an argument: --format");
    getopt_err(":q", (const char *const[]){"ls", "--quiet=yes", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "flag does not take an argument: --quiet");
    getopt_err(":q", (const char *const[]){"ls", "-x", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "unknown shorthand flag: -x");
    getopt_err(":q", (const char *const[]){"ls", "--quiet", "-xq", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "unknown shorthand flag: -x");
    getopt_err(":qH:", (const char *const[]){"ls", "-H", NULL}, buf, sizeof(buf));
    assert_string_equal(buf, "flag needs an argument: -H");
}

static void test_parse_choice(void **state)
{
    (void)state;
    static const char *const roles[] = {"worker", "manager"};
    assert_int_equal(cli_parse_choice("worker", roles, 2), 0);
    assert_int_equal(cli_parse_choice("manager", roles, 2), 1);
    assert_int_equal(cli_parse_choice("Manager", roles, 2), -EINVAL);
    assert_int_equal(cli_parse_choice("", roles, 2), -EINVAL);
    assert_int_equal(cli_parse_choice(NULL, roles, 2), -EINVAL);
}

static void test_parse_size(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_int_equal(cli_parse_size("64M", &v), 0);
    assert_int_equal(v, 64 << 20);
    assert_int_equal(cli_parse_size("64mib", &v), 0);
    assert_int_equal(v, 64 << 20);
    assert_int_equal(cli_parse_size("64MB", &v), 0);
    assert_int_equal(v, 64 << 20);
    assert_int_equal(cli_parse_size("1.5g", &v), 0);
    assert_int_equal(v, 3LL << 29);
    assert_int_equal(cli_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(cli_parse_size("10b", &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(cli_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cli_parse_size("8191p", &v), 0);
    assert_int_equal(cli_parse_size("8192p", &v), -ERANGE);
    assert_int_equal(cli_parse_size("99999999999999999999", &v), -ERANGE);
    const char *bad[] = {"",      "-1", "+1",   "M",    "64X",  "64Mx", "64 M",
                         "1.2.3", ".",  "64bb", "64mi", " 64M", "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -7;
        assert_int_equal(cli_parse_size(bad[i], &v), -EINVAL);
        assert_int_equal(v, -7);
    }
}

static void test_parse_nano_cpus(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_int_equal(cli_parse_nano_cpus("0.5", &v), 0);
    assert_int_equal(v, 500000000);
    assert_int_equal(cli_parse_nano_cpus("2", &v), 0);
    assert_int_equal(v, 2000000000);
    assert_int_equal(cli_parse_nano_cpus(".25", &v), 0);
    assert_int_equal(v, 250000000);
    assert_int_equal(cli_parse_nano_cpus("0.000000001", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cli_parse_nano_cpus("0", &v), -EINVAL);
    assert_int_equal(cli_parse_nano_cpus("0.0000000001", &v), -EINVAL);
    assert_int_equal(cli_parse_nano_cpus("-1", &v), -EINVAL);
    assert_int_equal(cli_parse_nano_cpus("1x", &v), -EINVAL);
    assert_int_equal(cli_parse_nano_cpus("", &v), -EINVAL);
    assert_int_equal(cli_parse_nano_cpus("99999999999999999", &v), -ERANGE);
}

static void test_parse_uint(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(cli_parse_uint("42", 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cli_parse_uint("101", 100, &v), -ERANGE);
    assert_int_equal(cli_parse_uint("18446744073709551616", UINT64_MAX, &v), -ERANGE);
    assert_int_equal(cli_parse_uint("-1", 100, &v), -EINVAL);
    assert_int_equal(cli_parse_uint("+1", 100, &v), -EINVAL);
    assert_int_equal(cli_parse_uint("", 100, &v), -EINVAL);
    assert_int_equal(cli_parse_uint("1 ", 100, &v), -EINVAL);
    assert_int_equal(v, 42);
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(cli_name_valid("web"));
    assert_true(cli_name_valid("db_pw.v2-x"));
    assert_true(cli_name_valid("0"));
    char longest[64];
    memset(longest, 'a', 63);
    longest[63] = '\0';
    assert_true(cli_name_valid(longest));
    char toolong[65];
    memset(toolong, 'a', 64);
    toolong[64] = '\0';
    assert_false(cli_name_valid(toolong));
    assert_false(cli_name_valid(""));
    assert_false(cli_name_valid("-web"));
    assert_false(cli_name_valid(".web"));
    assert_false(cli_name_valid("we b"));
    assert_false(cli_name_valid("we/b"));
    assert_false(
        cli_name_valid("w\xc3\xa9"
                       "b"));
    assert_false(cli_name_valid(NULL));
}

static void test_fmt_ago(void **state)
{
    (void)state;
    const uint64_t s = 1000000000ULL, now = 1767225600ULL * s;
    static const struct {
        uint64_t ago;
        const char *want;
    } cases[] = {
        {0, "Less than a second ago"}, {1, "1 second ago"},         {59, "59 seconds ago"},
        {60, "About a minute ago"},    {119, "About a minute ago"}, {185, "3 minutes ago"},
        {3599, "59 minutes ago"},      {3600, "About an hour ago"}, {5 * 3600, "5 hours ago"},
        {3 * 86400, "3 days ago"},     {20 * 86400, "2 weeks ago"}, {90 * 86400, "3 months ago"},
        {800 * 86400, "2 years ago"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_fmt_ago(now - cases[i].ago * s, now, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
    cli_fmt_ago(now + 10 * s, now, buf, sizeof(buf));
    assert_string_equal(buf, "Less than a second ago");
    cli_fmt_ago(0, now, buf, sizeof(buf));
    assert_string_equal(buf, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape),     cmocka_unit_test(test_json_document),
        cmocka_unit_test(test_json_pretty),     cmocka_unit_test(test_json_misuse),
        cmocka_unit_test(test_table_alignment), cmocka_unit_test(test_table_min_width),
        cmocka_unit_test(test_text_width),      cmocka_unit_test(test_getopt_error),
        cmocka_unit_test(test_parse_choice),    cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_nano_cpus), cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_name_valid),      cmocka_unit_test(test_fmt_ago),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
