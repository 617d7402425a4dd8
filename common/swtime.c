/* Duration parsing/formatting and clocks. */
#include "common/swtime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *name;
    uint64_t ns;
} units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"µs", 1000ULL},
    {"ms", SW_NSEC_PER_MSEC},
    {"s", SW_NSEC_PER_SEC},
    {"m", 60ULL * SW_NSEC_PER_SEC},
    {"h", 3600ULL * SW_NSEC_PER_SEC},
};

int sw_duration_parse(const char *s, uint64_t *ret_nsec)
{
    uint64_t total = 0;
    const char *p = s;

    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *ret_nsec = 0;
        return 0;
    }
    while (*p) {
        uint64_t whole = 0, frac = 0, frac_scale = 1;
        bool digits = false;
        while (*p >= '0' && *p <= '9') {
            if (whole > (UINT64_MAX - 9) / 10)
                return -ERANGE;
            whole = whole * 10 + (uint64_t)(*p - '0');
            p++;
            digits = true;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                if (frac_scale < 1000000000000000000ULL) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    frac_scale *= 10;
                }
                p++;
                digits = true;
            }
        }
        if (!digits)
            return -EINVAL;
        size_t best = 0;
        uint64_t unit = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].name);
            if (n > best && strncmp(p, units[i].name, n) == 0) {
                best = n;
                unit = units[i].ns;
            }
        }
        if (!best)
            return -EINVAL;
        p += best;
        if (whole > UINT64_MAX / unit)
            return -ERANGE;
        uint64_t v = whole * unit;
        /* frac/frac_scale * unit, without overflow for the units above */
        long double f = (long double)frac / (long double)frac_scale * (long double)unit;
        if ((long double)UINT64_MAX - (long double)v < f)
            return -ERANGE;
        v += (uint64_t)f;
        if (total > UINT64_MAX - v)
            return -ERANGE;
        total += v;
    }
    *ret_nsec = total;
    return 0;
}

void sw_duration_format(uint64_t ns, char *buf, size_t size)
{
    if (size == 0)
        return;
    if (ns == 0) {
        snprintf(buf, size, "0s");
        return;
    }
    if (ns < SW_NSEC_PER_SEC) {
        if (ns % SW_NSEC_PER_MSEC == 0)
            snprintf(buf, size, "%llums", (unsigned long long)(ns / SW_NSEC_PER_MSEC));
        else if (ns % 1000 == 0)
            snprintf(buf, size, "%lluus", (unsigned long long)(ns / 1000));
        else
            snprintf(buf, size, "%lluns", (unsigned long long)ns);
        return;
    }
    uint64_t h = ns / (3600 * SW_NSEC_PER_SEC);
    uint64_t m = (ns / (60 * SW_NSEC_PER_SEC)) % 60;
    uint64_t sec = (ns / SW_NSEC_PER_SEC) % 60;
    uint64_t sub = ns % SW_NSEC_PER_SEC;
    char sbuf[40];
    if (sub) {
        char frac[16];
        snprintf(frac, sizeof(frac), "%09llu", (unsigned long long)sub);
        for (int i = 8; i > 0 && frac[i] == '0'; i--)
            frac[i] = '\0';
        snprintf(sbuf, sizeof(sbuf), "%llu.%ss", (unsigned long long)sec, frac);
    } else {
        snprintf(sbuf, sizeof(sbuf), "%llus", (unsigned long long)sec);
    }
    if (h)
        snprintf(buf, size, "%lluh%llum%s", (unsigned long long)h, (unsigned long long)m, sbuf);
    else if (m)
        snprintf(buf, size, "%llum%s", (unsigned long long)m, sbuf);
    else
        snprintf(buf, size, "%s", sbuf);
}

static uint64_t now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * SW_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t sw_now_realtime_ns(void)
{
    return now(CLOCK_REALTIME);
}

uint64_t sw_now_monotonic_ns(void)
{
    return now(CLOCK_MONOTONIC);
}

void sw_time_format(uint64_t unix_ns, char *buf, size_t size)
{
    time_t t = (time_t)(unix_ns / SW_NSEC_PER_SEC);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (size)
        buf[0] = '\0';
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
