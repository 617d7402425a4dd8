/* pki unit tests: join tokens (generation, parsing, every reject reason) and sealing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "pki/pki.h"

static const char bundle[] = "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n";

static void test_digest(void **state)
{
    char d1[PKI_TOKEN_DIGEST_LEN + 1], d2[PKI_TOKEN_DIGEST_LEN + 1];
    assert_int_equal(pki_ca_digest(bundle, strlen(bundle), d1), 0);
    assert_int_equal(strlen(d1), PKI_TOKEN_DIGEST_LEN);
    assert_true(sw_base36_valid(d1, PKI_TOKEN_DIGEST_LEN));
    assert_int_equal(pki_ca_digest(bundle, strlen(bundle) - 1, d2), 0);
    assert_string_not_equal(d1, d2);
    /* SHA-256("") = e3b0c442...b855, independent of this implementation. */
    uint8_t raw[32];
    assert_int_equal(pki_ca_digest("", 0, d2), 0);
    assert_int_equal(sw_base36_decode(d2, raw, sizeof(raw)), 0);
    assert_int_equal(raw[0], 0xe3);
    assert_int_equal(raw[1], 0xb0);
    assert_int_equal(raw[31], 0x55);
}

static void test_roundtrip(void **state)
{
    char t1[PKI_TOKEN_LEN + 1], t2[PKI_TOKEN_LEN + 1];
    assert_int_equal(pki_token_generate(bundle, strlen(bundle), t1), 0);
    assert_int_equal(pki_token_generate(bundle, strlen(bundle), t2), 0);
    assert_int_equal(strlen(t1), PKI_TOKEN_LEN);
    assert_memory_equal(t1, PKI_TOKEN_PREFIX, strlen(PKI_TOKEN_PREFIX));
    struct pki_token a, b;
    char err[256] = "";
    assert_int_equal(pki_token_parse(t1, &a, err, sizeof(err)), 0);
    assert_int_equal(pki_token_parse(t2, &b, err, sizeof(err)), 0);
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    assert_int_equal(pki_ca_digest(bundle, strlen(bundle), digest), 0);
    assert_string_equal(a.digest, digest);
    assert_string_equal(b.digest, digest);
    assert_int_equal(strlen(a.secret), PKI_TOKEN_SECRET_LEN);
    assert_string_not_equal(a.secret, b.secret); /* fresh secret each time */
    char rebuilt[PKI_TOKEN_LEN + 1];
    snprintf(rebuilt, sizeof(rebuilt), "SWMTKN-1-%s-%s", a.digest, a.secret);
    assert_string_equal(rebuilt, t1);

    assert_true(pki_token_equal(t1, rebuilt));
    assert_false(pki_token_equal(t1, t2));
    assert_false(pki_token_equal(t1, "SWMTKN-1-"));
    assert_false(pki_token_equal(t1, NULL));
}

struct bad {
    const char *token;
    const char *reason;
};

static void test_rejects(void **state)
{
    char d[PKI_TOKEN_DIGEST_LEN + 1], s[PKI_TOKEN_SECRET_LEN + 1];
    memset(d, 'a', PKI_TOKEN_DIGEST_LEN);
    d[PKI_TOKEN_DIGEST_LEN] = '\0';
    d[0] = '0'; /* keep it below 2^256 */
    memset(s, 'b', PKI_TOKEN_SECRET_LEN);
    s[PKI_TOKEN_SECRET_LEN] = '\0';
    s[0] = '0';
    char buf[12][256];
    snprintf(buf[0], sizeof(buf[0]), "SWMTKN-1-%s-%s", d, s);
    snprintf(buf[1], sizeof(buf[1]), "SWMTKN-2-%s-%s", d, s);
    snprintf(buf[2], sizeof(buf[2]), "SWMTKN-1-%.49s-%s", d, s);
    snprintf(buf[3], sizeof(buf[3]), "SWMTKN-1-%s0-%s", d, s);
    snprintf(buf[4], sizeof(buf[4]), "SWMTKN-1-%s-%.24s", d, s);
    snprintf(buf[5], sizeof(buf[5]), "SWMTKN-1-%s-%s0", d, s);
    snprintf(buf[6], sizeof(buf[6]), "SWMTKN-1-%.49sA-%s", d, s);
    snprintf(buf[7], sizeof(buf[7]), "SWMTKN-1-%s-%.24s_", d, s);
    snprintf(buf[8], sizeof(buf[8]), "SWMKEY-1-%s-%s", d, s);
    snprintf(buf[9], sizeof(buf[9]), "SWMTKN-1-%s", d);
    snprintf(buf[10], sizeof(buf[10]), "SWMTKN-1-%s-%s\n", d, s);
    snprintf(buf[11], sizeof(buf[11]), "SWMTKN-1-%.50s-%s",
             "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", s);
    const struct bad cases[] = {
        {buf[1], "unsupported token version 2"},
        {buf[2], "token digest must be 50 characters"},
        {buf[3], "token digest must be 50 characters"},
        {buf[4], "token secret must be 25 characters"},
        {buf[5], "token secret must be 25 characters"},
        {buf[6], "token digest must be lowercase base36"},
        {buf[7], "token secret must be lowercase base36"},
        {buf[8], "token must start with SWMTKN-"},
        {buf[9], "missing its secret"},
        {buf[10], "token secret must be 25 characters"},
        {buf[11], "out of range"},
        {"", "token is empty"},
        {"SWMTKN-", "version is missing"},
        {"SWMTKN-1", "missing its CA digest"},
        {"SWMTKN-x!y-abc", "unsupported token version"},
        {"swmtkn-1-abc-def", "token must start with SWMTKN-"},
    };
    struct pki_token t;
    char err[256];
    assert_int_equal(pki_token_parse(buf[0], &t, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        memset(&t, 0x5a, sizeof(t));
        int r = pki_token_parse(cases[i].token, &t, err, sizeof(err));
        if (r != -EINVAL)
            fail_msg("case %zu (%s): got %d", i, cases[i].token, r);
        if (!strstr(err, cases[i].reason))
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, err, cases[i].reason);
        assert_null(strchr(err, '\n'));
        assert_int_equal(t.digest[0], 0x5a); /* ret untouched on failure */
    }
    assert_int_equal(pki_token_parse(NULL, &t, err, sizeof(err)), -EINVAL);
    /* A NULL errmsg is allowed. */
    assert_int_equal(pki_token_parse("x", &t, NULL, 0), -EINVAL);
}

static void test_seal_roundtrip(void **state)
{
    struct pki_aead_key k;
    assert_int_equal(pki_aead_key_generate(&k), 0);
    assert_int_not_equal(k.id, 0);
    const char pt[] = "the cluster's data encryption key";
    uint8_t *sealed = NULL, *opened = NULL;
    size_t sl = 0, ol = 0;
    assert_int_equal(pki_seal(&k, "nodes/abc", 9, pt, sizeof(pt), &sealed, &sl), 0);
    assert_int_equal(sl, sizeof(pt) + PKI_SEAL_OVERHEAD);
    assert_int_equal(sealed[0], PKI_SEAL_VERSION);
    assert_int_equal(((uint32_t)sealed[1] << 24) | ((uint32_t)sealed[2] << 16) |
                         ((uint32_t)sealed[3] << 8) | sealed[4],
                     k.id);
    assert_null(memmem(sealed, sl, "cluster", 7));
    uint32_t id = 0;
    assert_int_equal(pki_sealed_key_id(sealed, sl, &id), 0);
    assert_int_equal(id, k.id);
    assert_int_equal(pki_open(&k, "nodes/abc", 9, sealed, sl, &opened, &ol), 0);
    assert_int_equal(ol, sizeof(pt));
    assert_memory_equal(opened, pt, sizeof(pt));
    free(opened);

    /* Two seals of the same plaintext differ (random nonce). */
    uint8_t *again = NULL;
    size_t al = 0;
    assert_int_equal(pki_seal(&k, "nodes/abc", 9, pt, sizeof(pt), &again, &al), 0);
    assert_memory_not_equal(sealed + 5, again + 5, PKI_SEAL_NONCE);
    free(again);

    /* Empty plaintext and no AAD. */
    assert_int_equal(pki_seal(&k, NULL, 0, NULL, 0, &again, &al), 0);
    assert_int_equal(al, PKI_SEAL_OVERHEAD);
    opened = NULL;
    assert_int_equal(pki_open(&k, NULL, 0, again, al, &opened, &ol), 0);
    assert_int_equal(ol, 0);
    assert_non_null(opened);
    free(opened);
    free(again);
    free(sealed);
    pki_aead_key_clear(&k);
    assert_int_equal(k.id, 0);
}

static void test_seal_failures(void **state)
{
    struct pki_aead_key k, other;
    assert_int_equal(pki_aead_key_generate(&k), 0);
    assert_int_equal(pki_aead_key_generate(&other), 0);
    uint8_t *sealed = NULL, *out = NULL;
    size_t sl = 0, ol = 0;
    assert_int_equal(pki_seal(&k, "aad", 3, "secret", 6, &sealed, &sl), 0);

    /* Wrong key id. */
    assert_int_equal(pki_open(&other, "aad", 3, sealed, sl, &out, &ol), -ENOKEY);
    /* Wrong key under the right id. */
    struct pki_aead_key imposter = other;
    imposter.id = k.id;
    assert_int_equal(pki_open(&imposter, "aad", 3, sealed, sl, &out, &ol), -EBADMSG);
    /* Wrong AAD, missing AAD. */
    assert_int_equal(pki_open(&k, "aae", 3, sealed, sl, &out, &ol), -EBADMSG);
    assert_int_equal(pki_open(&k, NULL, 0, sealed, sl, &out, &ol), -EBADMSG);
    /* Every flipped bit after the key id is caught. */
    for (size_t i = 5; i < sl; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            sealed[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(pki_open(&k, "aad", 3, sealed, sl, &out, &ol), -EBADMSG);
            sealed[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Truncated records. */
    for (size_t n = 0; n < sl; n++) {
        int r = pki_open(&k, "aad", 3, sealed, n, &out, &ol);
        assert_true(r == -EBADMSG);
    }
    /* Wrong version. */
    sealed[0] = 2;
    assert_int_equal(pki_open(&k, "aad", 3, sealed, sl, &out, &ol), -EBADMSG);
    uint32_t id;
    assert_int_equal(pki_sealed_key_id(sealed, sl, &id), -EBADMSG);
    sealed[0] = PKI_SEAL_VERSION;
    assert_int_equal(pki_sealed_key_id(sealed, 4, &id), -EBADMSG);
    assert_null(out);
    assert_int_equal(pki_open(&k, "aad", 3, sealed, sl, &out, &ol), 0);
    assert_memory_equal(out, "secret", 6);
    free(out);
    free(sealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest),        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rejects),       cmocka_unit_test(test_seal_roundtrip),
        cmocka_unit_test(test_seal_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
