/* The in-task probe's shared helpers (probe.c) and its seccomp checks (probe-seccomp.c). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>

/* Report one check: "ok NAME[: detail]" or "FAIL NAME: detail" (counted). */
void ok(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check(bool good, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Whole file into buf (NUL-terminated): bytes read or -errno. */
ssize_t slurp(const char *path, char *buf, size_t size);
/* "Key:" of /proc/self/status, trimmed; "" when absent. Static buffer. */
const char *status_field(const char *key);
bool parse_ul(const char *s, int base, unsigned long *ret);
/* "EPERM" for EPERM, "success" for 0. */
const char *errname(int e);
void expect_errno(const char *name, int got, int want);

/* errno of a raw syscall returning -1, or 0 if it succeeded. */
#define SYSERR(...) (syscall(__VA_ARGS__) < 0 ? errno : 0)

/* probe-seccomp.c */
void expect_calls(int n, const char *const *specs); /* "keyctl=EPERM" ... */
void cmd_seccomp(void);
void cmd_seccomp_admin(void);
void cmd_unconfined(void);
