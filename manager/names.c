/* The names of secrets and services, kept in memory on the leader so that a create checks
 * uniqueness without reading (and opening) every object of the table: built from the store
 * once per leadership, kept by the store's events, and a name is held from the moment a
 * create is proposed (two creates of one name cannot both pass). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "manager/internal.h"
#include "proto/frame.h"

static struct mgr_names *names_of(struct mgr *m, enum store_table t)
{
    return t == STORE_SECRETS ? &m->secret_names : t == STORE_SERVICES ? &m->service_names : NULL;
}

/* An open-addressing hash set of names (linear probing; deleted slots hold TOMB). */
static char tomb_slot;
#define TOMB (&tomb_slot)

static uint64_t hash(const char *name)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* The slot holding name, or NULL. */
static char **lookup(const struct mgr_names *s, const char *name)
{
    if (!s->cap)
        return NULL;
    for (size_t i = hash(name) & (s->cap - 1), k = 0; k < s->cap; i = (i + 1) & (s->cap - 1), k++) {
        char *v = s->v[i];
        if (!v)
            return NULL;
        if (v != TOMB && strcmp(v, name) == 0)
            return &s->v[i];
    }
    return NULL;
}

static void put(struct mgr_names *s, char *name) /* room is known to be there */
{
    size_t i = hash(name) & (s->cap - 1);
    while (s->v[i] && s->v[i] != TOMB)
        i = (i + 1) & (s->cap - 1);
    if (!s->v[i])
        s->used++;
    s->v[i] = name;
    s->n++;
}

/* Keep the table at most half used (tombstones count): grow, or rehash in place. */
static int make_room(struct mgr_names *s)
{
    if ((s->used + 1) * 2 <= s->cap)
        return 0;
    size_t cap = 64; /* a quarter full after the rehash */
    while ((s->n + 1) * 4 > cap)
        cap *= 2;
    char **old = s->v;
    size_t old_cap = s->cap;
    s->v = calloc(cap, sizeof(*s->v));
    if (!s->v) {
        s->v = old;
        return -ENOMEM;
    }
    s->cap = cap;
    s->n = s->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] && old[i] != TOMB)
            put(s, old[i]);
    free(old);
    return 0;
}

static int add(struct mgr_names *s, const char *name)
{
    if (lookup(s, name))
        return 0;
    int r = make_room(s);
    if (r < 0)
        return r;
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    put(s, copy);
    return 0;
}

static void del(struct mgr_names *s, const char *name)
{
    char **slot = lookup(s, name);
    if (!slot)
        return;
    free(*slot);
    *slot = TOMB;
    s->n--;
}

static void clear(struct mgr_names *s)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i] && s->v[i] != TOMB)
            free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* The name in a stored secret or service (malloc'd), or NULL. */
static char *name_in(enum store_table t, const uint8_t *value, size_t len)
{
    char *name = NULL;
    if (t == STORE_SECRETS) {
        Swarm__Secret *s = swarm__secret__unpack(NULL, len, value);
        if (s) {
            name = strdup(s->name);
            sw_erase(s->data.data, s->data.len);
            swarm__secret__free_unpacked(s, NULL);
        }
    } else {
        Swarm__Service *s = swarm__service__unpack(NULL, len, value);
        if (s) {
            name = strdup(s->name);
            swarm__service__free_unpacked(s, NULL);
        }
    }
    return name;
}

static int collect(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    void **ctx = userdata;
    struct mgr_names *s = ctx[0];
    enum store_table t = (enum store_table)(intptr_t)ctx[1];
    _cleanup_free_ char *name = name_in(t, value, len);
    return name ? add(s, name) : 0;
}

static int build(struct mgr *m, enum store_table t, struct mgr_names *s)
{
    store_txn *txn;
    int r = store_read_begin(m->store, &txn);
    if (r < 0)
        return r;
    void *ctx[2] = {s, (void *)(intptr_t)t};
    r = store_foreach(txn, t, collect, ctx);
    store_read_end(txn);
    if (r < 0) {
        clear(s);
        return r;
    }
    s->built = true;
    return 0;
}

int mgr__name_reserve(struct mgr *m, enum store_table t, const char *name)
{
    struct mgr_names *s = names_of(m, t);
    int r;
    if (!s)
        return -EINVAL;
    if (!s->built && (r = build(m, t, s)) < 0)
        return r;
    if (lookup(s, name))
        return -EEXIST;
    return add(s, name);
}

void mgr__name_release(struct mgr *m, enum store_table t, const char *name)
{
    struct mgr_names *s = names_of(m, t);
    if (s && s->built)
        del(s, name);
}

void mgr__names_event(struct mgr *m, const struct store_event *ev)
{
    struct mgr_names *s = names_of(m, ev->table);
    if (!s || !s->built)
        return;
    if (ev->kind == STORE_DELETE && ev->old_value) {
        _cleanup_free_ char *name = name_in(ev->table, ev->old_value, ev->old_len);
        if (name)
            del(s, name);
    } else if (ev->kind == STORE_CREATE && ev->value) {
        _cleanup_free_ char *name = name_in(ev->table, ev->value, ev->len);
        if (name && add(s, name) < 0)
            clear(s); /* rebuilt at the next use */
    }
}

void mgr__names_clear(struct mgr *m)
{
    clear(&m->secret_names);
    clear(&m->service_names);
}
