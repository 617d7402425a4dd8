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

/* Index of name, or where it would go (*found says which). */
static size_t position(const struct mgr_names *s, const char *name, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->v[mid], name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int add(struct mgr_names *s, const char *name)
{
    bool found;
    size_t i = position(s, name, &found);
    if (found)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
    s->v[i] = copy;
    s->n++;
    return 0;
}

static void del(struct mgr_names *s, const char *name)
{
    bool found;
    size_t i = position(s, name, &found);
    if (!found)
        return;
    free(s->v[i]);
    memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
    s->n--;
}

static void clear(struct mgr_names *s)
{
    for (size_t i = 0; i < s->n; i++)
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
    s->built = true; /* add() keeps it sorted */
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
    bool found;
    position(s, name, &found);
    if (found)
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
