/* Join tokens: SWMTKN-1-<base36 CA digest, 50>-<base36 secret, 25>, parsing and comparison. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "pki/internal.h"

int pki_ca_digest(const char *bundle_pem, size_t len, char ret[PKI_TOKEN_DIGEST_LEN + 1])
{
    if (!bundle_pem && len)
        return -EINVAL;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(bundle_pem ? bundle_pem : "", len, md, &mdlen, EVP_sha256(), NULL) ||
        mdlen != sizeof(md)) {
        ERR_clear_error();
        return -EIO;
    }
    return sw_base36_encode(md, sizeof(md), PKI_TOKEN_DIGEST_LEN, ret);
}

int pki_token_generate(const char *bundle_pem, size_t len, char ret[PKI_TOKEN_LEN + 1])
{
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    char secret[PKI_TOKEN_SECRET_LEN + 1];
    uint8_t raw[16];
    int r = pki_ca_digest(bundle_pem, len, digest);
    if (r < 0)
        return r;
    r = sw_random_bytes(raw, sizeof(raw));
    if (r < 0)
        return r;
    r = sw_base36_encode(raw, sizeof(raw), PKI_TOKEN_SECRET_LEN, secret);
    sw_erase(raw, sizeof(raw));
    if (r < 0)
        return r;
    char buf[PKI_TOKEN_LEN + 1];
    int n = snprintf(buf, sizeof(buf), "%s%s-%s", PKI_TOKEN_PREFIX, digest, secret);
    sw_erase(secret, sizeof(secret));
    if (n < 0 || (size_t)n != PKI_TOKEN_LEN) {
        sw_erase(buf, sizeof(buf));
        return -EIO;
    }
    memcpy(ret, buf, sizeof(buf));
    sw_erase(buf, sizeof(buf));
    return 0;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int pki_token_parse(const char *s, struct pki_token *ret, char *errmsg, size_t errmsg_size)
{
    static const char prefix[] = "SWMTKN-";
    if (!s || !*s) {
        pki__errmsg(errmsg, errmsg_size, "token is empty");
        return -EINVAL;
    }
    if (strncmp(s, prefix, sizeof(prefix) - 1) != 0) {
        pki__errmsg(errmsg, errmsg_size, "token must start with SWMTKN-");
        return -EINVAL;
    }
    const char *ver = s + sizeof(prefix) - 1;
    const char *dash = strchr(ver, '-');
    size_t vlen = dash ? (size_t)(dash - ver) : strlen(ver);
    if (vlen != 1 || ver[0] != '1') {
        bool printable = vlen > 0 && vlen <= 8;
        for (size_t i = 0; printable && i < vlen; i++)
            printable = is_alnum(ver[i]);
        if (vlen == 0)
            pki__errmsg(errmsg, errmsg_size, "token version is missing after SWMTKN-");
        else if (printable)
            pki__errmsg(errmsg, errmsg_size, "unsupported token version %.*s", (int)vlen, ver);
        else
            pki__errmsg(errmsg, errmsg_size, "unsupported token version");
        return -EINVAL;
    }
    if (!dash) {
        pki__errmsg(errmsg, errmsg_size, "token is missing its CA digest after SWMTKN-1-");
        return -EINVAL;
    }
    const char *digest = dash + 1;
    const char *dash2 = strchr(digest, '-');
    if (!dash2) {
        pki__errmsg(errmsg, errmsg_size, "token is missing its secret after the CA digest");
        return -EINVAL;
    }
    size_t dlen = (size_t)(dash2 - digest);
    if (dlen != PKI_TOKEN_DIGEST_LEN) {
        pki__errmsg(errmsg, errmsg_size, "token digest must be %d characters, not %zu",
                    PKI_TOKEN_DIGEST_LEN, dlen);
        return -EINVAL;
    }
    if (!sw_base36_valid(digest, dlen)) {
        pki__errmsg(errmsg, errmsg_size, "token digest must be lowercase base36 [0-9a-z]");
        return -EINVAL;
    }
    const char *secret = dash2 + 1;
    size_t slen = strlen(secret);
    if (slen != PKI_TOKEN_SECRET_LEN) {
        pki__errmsg(errmsg, errmsg_size, "token secret must be %d characters, not %zu",
                    PKI_TOKEN_SECRET_LEN, slen);
        return -EINVAL;
    }
    if (!sw_base36_valid(secret, slen)) {
        pki__errmsg(errmsg, errmsg_size, "token secret must be lowercase base36 [0-9a-z]");
        return -EINVAL;
    }
    /* Values a SHA-256 / 128-bit secret cannot have. */
    char tmp[PKI_TOKEN_DIGEST_LEN + 1];
    uint8_t raw[32];
    memcpy(tmp, digest, dlen);
    tmp[dlen] = '\0';
    if (sw_base36_decode(tmp, raw, 32) < 0) {
        pki__errmsg(errmsg, errmsg_size, "token digest is out of range for a SHA-256");
        return -EINVAL;
    }
    if (sw_base36_decode(secret, raw, 16) < 0) {
        sw_erase(raw, sizeof(raw));
        pki__errmsg(errmsg, errmsg_size, "token secret is out of range for 128 bits");
        return -EINVAL;
    }
    sw_erase(raw, sizeof(raw));
    if (ret) {
        memcpy(ret->digest, digest, dlen);
        ret->digest[dlen] = '\0';
        memcpy(ret->secret, secret, slen);
        ret->secret[slen] = '\0';
    }
    return 0;
}

bool pki_token_equal(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}
