/* Unit tests of cmd/cli.c: JSON string escaping and writer, table alignment, flag errors. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape),     cmocka_unit_test(test_json_document),
        cmocka_unit_test(test_json_pretty),     cmocka_unit_test(test_json_misuse),
        cmocka_unit_test(test_table_alignment), cmocka_unit_test(test_table_min_width),
        cmocka_unit_test(test_text_width),      cmocka_unit_test(test_getopt_error),
        cmocka_unit_test(test_parse_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
