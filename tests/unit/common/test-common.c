/* common/: base36, IDs, durations, addresses, log levels. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/addr.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/swtime.h"

static void test_base36_roundtrip(void **state)
{
    uint8_t in[16], out[16];
    char s[SW_ID_LEN + 1];
    for (int i = 0; i < 200; i++) {
        assert_int_equal(sw_random_bytes(in, sizeof(in)), 0);
        assert_int_equal(sw_base36_encode(in, sizeof(in), SW_ID_LEN, s), 0);
        assert_int_equal(strlen(s), SW_ID_LEN);
        assert_int_equal(sw_base36_decode(s, out, sizeof(out)), 0);
        assert_memory_equal(in, out, sizeof(in));
    }
    /* the largest 128-bit value fits in 25 chars */
    memset(in, 0xff, sizeof(in));
    assert_int_equal(sw_base36_encode(in, sizeof(in), SW_ID_LEN, s), 0);
    assert_string_equal(s, "f5lxx1zz5pnorynqglhzmsp33");
    /* zero pads */
    memset(in, 0, sizeof(in));
    in[15] = 35;
    assert_int_equal(sw_base36_encode(in, sizeof(in), SW_ID_LEN, s), 0);
    assert_string_equal(s, "000000000000000000000000z");
    /* too narrow */
    memset(in, 0xff, sizeof(in));
    assert_int_equal(sw_base36_encode(in, sizeof(in), 24, s), -ERANGE);
}

static void test_base36_decode_rejects(void **state)
{
    uint8_t out[16];
    assert_int_equal(sw_base36_decode("ABC", out, sizeof(out)), -EINVAL);
    assert_int_equal(sw_base36_decode("a-b", out, sizeof(out)), -EINVAL);
    /* 36^25 - 1 overflows 128 bits */
    assert_int_equal(sw_base36_decode("zzzzzzzzzzzzzzzzzzzzzzzzz", out, sizeof(out)), -ERANGE);
}

static void test_ids(void **state)
{
    char a[SW_ID_LEN + 1], b[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(a), 0);
    assert_int_equal(sw_id_generate(b), 0);
    assert_true(sw_id_valid(a));
    assert_string_not_equal(a, b);
    assert_false(sw_id_valid("short"));
    assert_false(sw_id_valid("0123456789abcdefghijklmnO"));
    assert_false(sw_id_valid(NULL));
}

static void test_duration_parse(void **state)
{
    uint64_t ns;
    assert_int_equal(sw_duration_parse("90s", &ns), 0);
    assert_true(ns == 90 * SW_NSEC_PER_SEC);
    assert_int_equal(sw_duration_parse("720h", &ns), 0);
    assert_true(ns == 720ULL * 3600 * SW_NSEC_PER_SEC);
    assert_int_equal(sw_duration_parse("1h30m", &ns), 0);
    assert_true(ns == 5400 * SW_NSEC_PER_SEC);
    assert_int_equal(sw_duration_parse("1.5s", &ns), 0);
    assert_true(ns == 1500 * SW_NSEC_PER_MSEC);
    assert_int_equal(sw_duration_parse("250ms", &ns), 0);
    assert_true(ns == 250 * SW_NSEC_PER_MSEC);
    assert_int_equal(sw_duration_parse("0", &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(sw_duration_parse("", &ns), -EINVAL);
    assert_int_equal(sw_duration_parse("10", &ns), -EINVAL);
    assert_int_equal(sw_duration_parse("h", &ns), -EINVAL);
    assert_int_equal(sw_duration_parse("5x", &ns), -EINVAL);
    assert_int_equal(sw_duration_parse("-5s", &ns), -EINVAL);
    assert_int_equal(sw_duration_parse("5 s", &ns), -EINVAL);
    assert_int_equal(sw_duration_parse("99999999999999999999h", &ns), -ERANGE);
    assert_int_equal(sw_duration_parse("9999999999h", &ns), -ERANGE);
}

static void test_duration_format(void **state)
{
    char buf[64];
    sw_duration_format(2160ULL * 3600 * SW_NSEC_PER_SEC, buf, sizeof(buf));
    assert_string_equal(buf, "2160h0m0s");
    sw_duration_format(5 * SW_NSEC_PER_SEC, buf, sizeof(buf));
    assert_string_equal(buf, "5s");
    sw_duration_format(1500 * SW_NSEC_PER_MSEC, buf, sizeof(buf));
    assert_string_equal(buf, "1.5s");
    sw_duration_format(250 * SW_NSEC_PER_MSEC, buf, sizeof(buf));
    assert_string_equal(buf, "250ms");
    sw_duration_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "0s");
    sw_duration_format(61 * SW_NSEC_PER_SEC, buf, sizeof(buf));
    assert_string_equal(buf, "1m1s");
}

static void test_addr(void **state)
{
    struct sw_addr a;
    char buf[80];
    assert_int_equal(sw_addr_parse("10.0.0.1", 2377, 0, &a), 0);
    assert_string_equal(a.host, "10.0.0.1");
    assert_int_equal(a.port, 2377);
    assert_int_equal(sw_addr_parse("127.0.0.1:0", 2377, 1, &a), 0);
    assert_int_equal(a.port, 0);
    assert_int_equal(sw_addr_parse("127.0.0.1:0", 2377, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("[::1]:4000", 2377, 0, &a), 0);
    sw_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:4000");
    assert_int_equal(sw_addr_parse("::1", 2377, 0, &a), 0);
    assert_int_equal(a.port, 2377);
    assert_int_equal(sw_addr_parse("10.0.0.1", -1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("10.0.0.256:1", 1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("10.0.0.1:65536", 1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("10.0.0.1:-1", 1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("10.0.0.1:12ab", 1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("example.com:80", 1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("", 1, 0, &a), -EINVAL);
    assert_int_equal(sw_addr_parse("[::1", 1, 0, &a), -EINVAL);
}

static void test_hostname(void **state)
{
    char big[300];
    assert_true(sw_hostname_valid("web-1.example_x"));
    assert_false(sw_hostname_valid(""));
    assert_false(sw_hostname_valid(NULL));
    assert_false(sw_hostname_valid("a b"));
    assert_false(sw_hostname_valid("a/b"));
    assert_false(sw_hostname_valid("caf\xc3\xa9"));
    memset(big, 'a', sizeof(big));
    big[253] = '\0';
    assert_true(sw_hostname_valid(big));
    big[253] = 'a';
    big[254] = '\0';
    assert_false(sw_hostname_valid(big));
}

static void test_log_level(void **state)
{
    enum sw_log_level l;
    assert_int_equal(sw_log_level_parse("debug", &l), 0);
    assert_int_equal(l, SW_LOG_DEBUG);
    assert_int_equal(sw_log_level_parse("error", &l), 0);
    assert_int_equal(l, SW_LOG_ERROR);
    assert_int_equal(sw_log_level_parse("verbose", &l), -EINVAL);
    assert_int_equal(log_error_errno(-ENOENT, "test message %d", 1), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base36_roundtrip),
        cmocka_unit_test(test_base36_decode_rejects),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_hostname),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
