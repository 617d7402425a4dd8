/* worker/ internals shared by join.c, agent.c and managers.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/* The managers a node may reach, one IP:PORT per line, in <state-dir>/managers. */
#define WRK_MANAGERS_FILE "managers"
#define WRK_MANAGERS_MAX 16

/* ms ± pct% (uniformly), at least 1. */
uint64_t wrk__jitter_ms(uint64_t ms, unsigned pct);
/* Write the list atomically (0600). */
int wrk__managers_save(const char *dir, const struct sw_addr *list, size_t n, char *errmsg,
                       size_t size);
/* Read the list; lines that do not parse are skipped. -ENOENT if the file is missing or
 * holds no address. */
int wrk__managers_load(const char *dir, struct sw_addr *list, size_t max, size_t *ret_n,
                       char *errmsg, size_t size);
