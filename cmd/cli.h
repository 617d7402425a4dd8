/* Shared helpers of the command-line tools: aligned tables, a small JSON writer and
 * flag-parsing helpers with docker-style usage errors. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes shared by swarmctl and swarmd. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1 /* the operation failed */
#define CLI_EXIT_USAGE 2   /* bad command line */

/* ------------------------------------------------------------------ tables */

/* A table printed like `docker node ls`: every column but the last is padded to
 * max(widest cell + 3, 10) display columns, the last one is not padded. Widths count
 * UTF-8 code points, not bytes. */
typedef struct cli_table cli_table;

/* headers: ncols strings (copied). -EINVAL for ncols == 0, -ENOMEM. */
int cli_table_create(size_t ncols, const char *const *headers, cli_table **ret);
/* cells: ncols strings (copied; NULL prints as empty). -ENOMEM. */
int cli_table_add_row(cli_table *t, const char *const *cells);
size_t cli_table_rows(const cli_table *t);
/* Write header and rows. -EIO if the stream reports an error. */
int cli_table_print(const cli_table *t, FILE *f);
void cli_table_free(cli_table *t);
/* Display width of a UTF-8 string (code points; invalid bytes count as one each). */
size_t cli_text_width(const char *s);

/* ------------------------------------------------------------------ JSON */

#define CLI_JSON_MAX_DEPTH 32

/* A streaming JSON writer. Misuse (a value where a key is due, unbalanced ends, too
 * deep) and write errors are remembered and reported by cli_json_finish. Output is
 * indented by 4 spaces like `docker inspect` when pretty, else on one line. */
struct cli_json {
    FILE *f;
    bool pretty;
    int depth;
    int err;                            /* first error, -EINVAL or -EIO */
    bool in_object[CLI_JSON_MAX_DEPTH]; /* container kind per level */
    bool has_items[CLI_JSON_MAX_DEPTH]; /* a comma is due before the next item */
    bool want_value;                    /* a key was written, its value is due */
};

void cli_json_init(struct cli_json *j, FILE *f, bool pretty);
void cli_json_begin_object(struct cli_json *j);
void cli_json_end_object(struct cli_json *j);
void cli_json_begin_array(struct cli_json *j);
void cli_json_end_array(struct cli_json *j);
/* Inside an object: the next member's name. */
void cli_json_key(struct cli_json *j, const char *key);
/* NULL writes null. */
void cli_json_string(struct cli_json *j, const char *s);
void cli_json_uint(struct cli_json *j, uint64_t v);
void cli_json_int(struct cli_json *j, int64_t v);
void cli_json_bool(struct cli_json *j, bool v);
void cli_json_null(struct cli_json *j);
/* Shorthands for key + value. */
void cli_json_kv_string(struct cli_json *j, const char *key, const char *s);
void cli_json_kv_uint(struct cli_json *j, const char *key, uint64_t v);
void cli_json_kv_int(struct cli_json *j, const char *key, int64_t v);
void cli_json_kv_bool(struct cli_json *j, const char *key, bool v);
/* Ends the document with a newline. 0, or the first error (-EINVAL for misuse or an
 * unfinished document, -EIO for a write error). */
int cli_json_finish(struct cli_json *j);
/* Write s as a quoted JSON string: ", \ and control characters escaped, U+2028/U+2029
 * escaped, invalid UTF-8 replaced by U+FFFD. -EIO on a write error. */
int cli_json_write_string(FILE *f, const char *s);

/* ------------------------------------------------------------------ flags */

/* Print "<prog>: <message>. See '<prog>[ <cmd>] --help'." as one line on stderr and
 * return CLI_EXIT_USAGE. cmd may be NULL or "" for the top level. */
int cli_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Describe what getopt_long (optstring starting with ':' after any '+') just rejected:
 * c is its return value ('?' or ':'), argv/optind/optopt as it left them. Writes e.g.
 * "unknown flag: --foo", "unknown shorthand flag: -x",
 * "flag needs an argument: --format" into buf (always NUL-terminated). */
void cli_getopt_error(int c, char *const *argv, const struct option *longopts, char *buf,
                      size_t size);

/* Index of value in choices[0..n), or -EINVAL. */
int cli_parse_choice(const char *value, const char *const *choices, size_t n);

/* ------------------------------------------------------------------ values */

/* A size like docker's: a number (fraction allowed) with an optional binary unit b, k, m,
 * g, t, p (any case, optionally followed by "b" or "ib": 64M, 64mb, 1.5GiB, 4096).
 * -EINVAL if malformed, -ERANGE if above INT64_MAX bytes. */
int cli_parse_size(const char *s, int64_t *ret);
/* A positive number of CPUs with at most 9 decimals ("0.5", "2") as nano-CPUs;
 * -EINVAL if malformed or 0, -ERANGE if too large. */
int cli_parse_nano_cpus(const char *s, int64_t *ret);
/* A decimal integer (digits only) of at most max; -EINVAL, -ERANGE. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *ret);
/* An object name: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}. */
bool cli_name_valid(const char *s);
/* How long ago then was, as docker says it: "Less than a second ago", "About a minute
 * ago", "3 hours ago", "2 weeks ago". "-" for then == 0; times in the future read as
 * "Less than a second ago". */
void cli_fmt_ago(uint64_t then_ns, uint64_t now_ns, char *buf, size_t size);
