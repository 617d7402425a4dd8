/* Leveled logging to stderr with a UTC timestamp. */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum sw_log_level current_level = SW_LOG_INFO;
static const char *current_tag;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sw_log_set_level(enum sw_log_level level)
{
    current_level = level;
}

enum sw_log_level sw_log_get_level(void)
{
    return current_level;
}

void sw_log_set_tag(const char *tag)
{
    current_tag = tag;
}

int sw_log_level_parse(const char *s, enum sw_log_level *ret_level)
{
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *ret_level = (enum sw_log_level)i;
            return 0;
        }
    if (strcmp(s, "warning") == 0) {
        *ret_level = SW_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

static void vlog(enum sw_log_level level, int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vlog(enum sw_log_level level, int err, const char *fmt, va_list ap)
{
    char msg[1024];
    struct timespec ts;
    struct tm tm;
    char stamp[32];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    if (err)
        fprintf(stderr, "%s.%03ldZ %s%s%-5s %s: %s\n", stamp, ts.tv_nsec / 1000000,
                current_tag ? current_tag : "", current_tag ? " " : "", level_names[level], msg,
                strerror(err));
    else
        fprintf(stderr, "%s.%03ldZ %s%s%-5s %s\n", stamp, ts.tv_nsec / 1000000,
                current_tag ? current_tag : "", current_tag ? " " : "", level_names[level], msg);
}

void sw_log(enum sw_log_level level, const char *fmt, ...)
{
    va_list ap;
    if (level < current_level)
        return;
    int saved = errno;
    va_start(ap, fmt);
    vlog(level, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

int sw_log_errno(enum sw_log_level level, int r, const char *fmt, ...)
{
    va_list ap;
    if (level < current_level)
        return r;
    int saved = errno;
    va_start(ap, fmt);
    vlog(level, r < 0 ? -r : r, fmt, ap);
    va_end(ap);
    errno = saved;
    return r;
}

void sw_errmsg(char *errmsg, size_t size, const char *fmt, ...)
{
    if (!errmsg || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, size, fmt, ap);
    va_end(ap);
    if (n < 0)
        errmsg[0] = '\0';
}
