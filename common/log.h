/* Leveled logging to stderr. Libraries log at debug only; the daemon decides the rest. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

enum sw_log_level {
    SW_LOG_DEBUG = 0,
    SW_LOG_INFO = 1,
    SW_LOG_WARN = 2,
    SW_LOG_ERROR = 3,
};

void sw_log_set_level(enum sw_log_level level);
enum sw_log_level sw_log_get_level(void);
/* "debug|info|warn|error" -> level; -EINVAL for anything else. */
int sw_log_level_parse(const char *s, enum sw_log_level *ret_level);
/* Prefix each line with this tag (e.g. "swarmd"); default none. */
void sw_log_set_tag(const char *tag);

void sw_log(enum sw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs "fmt: strerror(-r)" and returns r (negative errno), systemd's log_error_errno. */
int sw_log_errno(enum sw_log_level level, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write a formatted one-line message into an errmsg buffer (errmsg may be NULL or size 0:
 * nothing is written); a formatting failure leaves it empty. */
void sw_errmsg(char *errmsg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) sw_log(SW_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) sw_log(SW_LOG_INFO, __VA_ARGS__)
#define log_warn(...) sw_log(SW_LOG_WARN, __VA_ARGS__)
#define log_error(...) sw_log(SW_LOG_ERROR, __VA_ARGS__)
#define log_debug_errno(r, ...) sw_log_errno(SW_LOG_DEBUG, (r), __VA_ARGS__)
#define log_warn_errno(r, ...) sw_log_errno(SW_LOG_WARN, (r), __VA_ARGS__)
#define log_error_errno(r, ...) sw_log_errno(SW_LOG_ERROR, (r), __VA_ARGS__)
