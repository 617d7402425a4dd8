/* Fuzz target: join token parsing (pki_token_parse) and constant-time comparison. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    struct pki_token t;
    char err[256];
    memset(err, 'x', sizeof(err));
    int r = pki_token_parse(s, &t, err, sizeof(err));
    if (r == 0) {
        char rebuilt[PKI_TOKEN_LEN + 1];
        int n = snprintf(rebuilt, sizeof(rebuilt), "%s%s-%s", PKI_TOKEN_PREFIX, t.digest, t.secret);
        /* A valid token is exactly its parts: nothing ignored, nothing trailing. */
        if (n != (int)PKI_TOKEN_LEN || strcmp(rebuilt, s) != 0 || !pki_token_equal(rebuilt, s))
            abort();
    } else {
        /* Failure leaves a one-line reason that fits the buffer. */
        if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0' || strchr(err, '\n'))
            abort();
    }
    /* A tiny buffer truncates without overflowing. */
    char small[8];
    int r2 = pki_token_parse(s, NULL, small, sizeof(small));
    if (r2 != r || (r < 0 && memchr(small, '\0', sizeof(small)) == NULL))
        abort();
    if (!pki_token_equal(s, s))
        abort();
    free(s);
    return 0;
}
