/* Base36 encoding of big-endian byte strings and random IDs. */
#include "common/ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "common/cleanup.h"

static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

int sw_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sw_base36_encode(const uint8_t *data, size_t len, size_t width, char *out)
{
    uint8_t num[64];
    size_t pos = width;

    if (len > sizeof(num))
        return -EINVAL;
    memcpy(num, data, len);
    out[width] = '\0';
    for (;;) {
        /* num /= 36, remainder -> digit */
        unsigned rem = 0;
        bool nonzero = false;
        for (size_t i = 0; i < len; i++) {
            unsigned cur = (rem << 8) | num[i];
            num[i] = (uint8_t)(cur / 36);
            rem = cur % 36;
            if (num[i])
                nonzero = true;
        }
        if (pos == 0) {
            sw_erase(num, sizeof(num));
            return -ERANGE;
        }
        out[--pos] = alphabet[rem];
        if (!nonzero)
            break;
    }
    while (pos > 0)
        out[--pos] = '0';
    sw_erase(num, sizeof(num));
    return 0;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    return -1;
}

bool sw_base36_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (digit_value(s[i]) < 0)
            return false;
    return true;
}

int sw_base36_decode(const char *s, uint8_t *out, size_t len)
{
    memset(out, 0, len);
    for (const char *p = s; *p; p++) {
        int d = digit_value(*p);
        if (d < 0)
            return -EINVAL;
        /* out = out * 36 + d */
        unsigned carry = (unsigned)d;
        for (size_t i = len; i-- > 0;) {
            unsigned cur = out[i] * 36u + carry;
            out[i] = (uint8_t)(cur & 0xff);
            carry = cur >> 8;
        }
        if (carry)
            return -ERANGE;
    }
    return 0;
}

int sw_id_generate(char ret[SW_ID_LEN + 1])
{
    uint8_t raw[16];
    int r = sw_random_bytes(raw, sizeof(raw));
    if (r < 0)
        return r;
    r = sw_base36_encode(raw, sizeof(raw), SW_ID_LEN, ret);
    sw_erase(raw, sizeof(raw));
    return r;
}

bool sw_id_valid(const char *s)
{
    return s && strlen(s) == SW_ID_LEN && sw_base36_valid(s, SW_ID_LEN);
}
