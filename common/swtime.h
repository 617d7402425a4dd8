/* Time: durations as Go writes them ("90s", "1h30m", "720h"), clocks, timestamps. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SW_NSEC_PER_MSEC 1000000ULL
#define SW_NSEC_PER_SEC 1000000000ULL

/* Parse a duration: one or more <number><unit> with unit ns|us|ms|s|m|h, no sign, no
 * spaces ("90s", "1h30m", "1.5h"); -EINVAL if malformed, -ERANGE if it overflows. */
int sw_duration_parse(const char *s, uint64_t *ret_nsec);
/* Format like Go: "2160h0m0s", "5s", "1.5s", "250ms", "0s". Always NUL-terminates. */
void sw_duration_format(uint64_t nsec, char *buf, size_t size);

uint64_t sw_now_realtime_ns(void);
uint64_t sw_now_monotonic_ns(void);
/* RFC 3339 UTC with seconds, e.g. 2026-11-24T05:46:03Z. */
void sw_time_format(uint64_t unix_ns, char *buf, size_t size);
