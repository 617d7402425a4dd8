/* Scope-bound cleanup helpers (__attribute__((cleanup))), after systemd and crun. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void sw_freep(void *p)
{
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(sw_freep)

static inline void sw_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
#define _cleanup_close_ _cleanup_(sw_closep)

static inline void sw_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(sw_fclosep)

/* Wipe memory that held a secret; the compiler may not elide it. */
static inline void sw_erase(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

/* A secret buffer: wiped, then freed. */
struct sw_secret {
    unsigned char *data;
    size_t len;
};
static inline void sw_secret_finish(struct sw_secret *s)
{
    if (s->data) {
        sw_erase(s->data, s->len);
        free(s->data);
    }
    s->data = NULL;
    s->len = 0;
}
#define _cleanup_secret_ _cleanup_(sw_secret_finish)

/* Define foo_freep(struct foo **) calling foo_free on non-NULL. */
#define SW_DEFINE_FREEP(type, func)      \
    static inline void func##p(type **p) \
    {                                    \
        if (*p)                          \
            func(*p);                    \
    }

/* Move ownership out of a cleanup variable. */
#define TAKE_PTR(p)               \
    ({                            \
        __typeof__(p) _tp_ = (p); \
        (p) = NULL;               \
        _tp_;                     \
    })
#define TAKE_FD(fd)      \
    ({                   \
        int _tf_ = (fd); \
        (fd) = -1;       \
        _tf_;            \
    })

#define SW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SW_MAX(a, b) ((a) > (b) ? (a) : (b))
