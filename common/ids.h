/* Base36 and the 25-character random IDs of nodes, clusters and objects (Swarm's look). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_ID_LEN 25 /* base36 of 128 random bits, zero-padded */

/* Fill buf with len bytes from the kernel CSPRNG (getrandom). */
int sw_random_bytes(void *buf, size_t len);

/* Encode the big-endian number in data[0..len) as lowercase base36, left-padded with '0'
 * to exactly width characters; out must hold width+1 bytes. -ERANGE if it does not fit. */
int sw_base36_encode(const uint8_t *data, size_t len, size_t width, char *out);
/* Decode exactly strlen(s) base36 characters into a big-endian number of len bytes.
 * -EINVAL on a character outside [0-9a-z], -ERANGE if the value overflows len bytes. */
int sw_base36_decode(const char *s, uint8_t *out, size_t len);
bool sw_base36_valid(const char *s, size_t n);

/* A new random ID: SW_ID_LEN chars + NUL. */
int sw_id_generate(char ret[SW_ID_LEN + 1]);
/* True for exactly SW_ID_LEN characters of [0-9a-z]. */
bool sw_id_valid(const char *s);
