/* A small, strict JSON parser (RFC 8259): size, depth and node caps, UTF-8 validation,
 * no recursion while parsing; a read-only tree with lookup helpers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sw_json_type {
    SW_JSON_NULL,
    SW_JSON_BOOL,
    SW_JSON_NUMBER,
    SW_JSON_STRING,
    SW_JSON_ARRAY,
    SW_JSON_OBJECT,
};

typedef struct sw_json sw_json;

struct sw_json_limits {
    size_t max_bytes;   /* input size; 0: 1 MiB */
    unsigned max_depth; /* nesting of arrays/objects; 0: 64 */
    size_t max_nodes;   /* values in the whole document; 0: 262144 */
};

/* Parse text[0..len) (no NUL needed; a NUL byte outside a string is an error). Strict:
 * one value, no trailing data, no comments, no duplicate object keys, no \u0000 in strings,
 * valid UTF-8 only. lim may be NULL for the defaults. -EINVAL with errmsg
 * ("line 3, column 7: expected ':' after an object key"), or -ENOMEM. */
int sw_json_parse(const char *text, size_t len, const struct sw_json_limits *lim, sw_json **ret,
                  char *errmsg, size_t errmsg_size);
void sw_json_free(sw_json *v);

enum sw_json_type sw_json_type_of(const sw_json *v);
/* "null", "boolean", "number", "string", "array", "object". */
const char *sw_json_type_name(enum sw_json_type t);

/* Arrays and objects: element count (0 for anything else) and the i-th element, or NULL. */
size_t sw_json_count(const sw_json *v);
const sw_json *sw_json_at(const sw_json *v, size_t i);
/* Objects: the i-th key in document order, or NULL. */
const char *sw_json_key_at(const sw_json *v, size_t i);
/* Objects: the value of key, or NULL (also when v is not an object). */
const sw_json *sw_json_get(const sw_json *v, const char *key);

/* Scalars: false when v is NULL or of another type (or the number does not fit). */
bool sw_json_get_bool(const sw_json *v, bool *ret);
/* Integers only (no fraction or exponent in the text), in range. */
bool sw_json_get_int64(const sw_json *v, int64_t *ret);
bool sw_json_get_uint64(const sw_json *v, uint64_t *ret);
bool sw_json_get_double(const sw_json *v, double *ret);
/* The string, NUL-terminated (never holds a NUL), or NULL; ret_len may be NULL. */
const char *sw_json_get_string(const sw_json *v, size_t *ret_len);
