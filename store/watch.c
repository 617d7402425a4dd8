/* store: in-process watchers of applied changes. Watchers may add or remove watchers
 * (themselves included) from inside a callback. */
#include <errno.h>
#include <stdlib.h>

#include "store/internal.h"

int store_watch_add(store *s, store_watch_fn fn, void *userdata, store_watch **ret)
{
    store_watch *w, **tail;

    if (!s || !fn)
        return -EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->s = s;
    w->fn = fn;
    w->userdata = userdata;
    w->gen = s->watch_gen;
    for (tail = &s->watches; *tail; tail = &(*tail)->next)
        ;
    *tail = w;
    if (ret)
        *ret = w;
    return 0;
}

/* Unlink and free removed watchers; only outside dispatch. */
static void sweep(store *s)
{
    store_watch **pp = &s->watches;

    while (*pp) {
        store_watch *w = *pp;
        if (w->removed) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

void store_watch_remove(store_watch *w)
{
    if (!w)
        return;
    w->removed = true;
    if (w->s->dispatching == 0)
        sweep(w->s);
}

void store__watch_dispatch(store *s, const struct store_event *evs, size_t n)
{
    uint64_t gen;

    if (n == 0)
        return;
    gen = ++s->watch_gen; /* watchers added from here on see only later dispatches */
    s->dispatching++;
    for (size_t i = 0; i < n; i++) {
        for (store_watch *w = s->watches; w; w = w->next) {
            if (w->removed || w->gen >= gen)
                continue;
            w->fn(&evs[i], w->userdata);
        }
    }
    s->dispatching--;
    if (s->dispatching == 0)
        sweep(s);
}

void store__watch_free_all(store *s)
{
    store_watch *w = s->watches, *next;

    for (; w; w = next) {
        next = w->next;
        free(w);
    }
    s->watches = NULL;
}
