/* store/ internals shared by its files: the store object, LMDB handles, value sealing,
 * object writes with index maintenance, and watch dispatch. */
#pragma once

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_FORMAT_VERSION 1
#define STORE_MAPSIZE (1ULL << 30) /* sparse file; grows as used */
#define STORE_MAXDBS 16

struct store_watch {
    store *s;
    store_watch_fn fn;
    void *userdata;
    uint64_t gen; /* watch generation when added: sees only later dispatches */
    bool removed;
    struct store_watch *next;
};

/* One step of the open batch, delivered in order after its commit: the watch events of an
 * applied proposal (which owns their memory), or a deferred callback. */
struct store_pending {
    void *proposal; /* the decoded Swarm__Proposal the events point into; NULL: callback */
    struct store_event *evs;
    size_t n_evs;
    store_commit_fn fn;
    void *userdata;
};

struct store {
    MDB_env *env;
    MDB_dbi tables[STORE_TABLE_MAX + 1]; /* indexed by enum store_table */
    MDB_dbi by_service;
    MDB_dbi by_node;
    MDB_dbi meta;
    char *cluster_id;
    struct pki_aead_key dek;                          /* current: seals everything new */
    struct pki_aead_key old_keys[STORE_OLD_KEYS_MAX]; /* retired ones open what they sealed; */
    bool old_retired[STORE_OLD_KEYS_MAX];             /* the others are next (not used yet) */
    unsigned n_old_keys;
    uint64_t retired_used; /* last raft index applied that a key other than dek sealed */
    char *mark_path;       /* rebuildable: the open mark, removed at a clean close */
    bool reset;            /* rebuildable: emptied at open (open when the machine went down) */
    uint64_t applied;      /* last applied raft index, the open batch included */
    uint64_t committed;    /* applied index of the last commit */

    MDB_txn *batch;       /* the open batch's write transaction, or NULL */
    size_t batch_entries; /* proposals applied in it */
    uint64_t batch_begun; /* when it was opened (monotonic ns) */
    struct store_pending *pending;
    size_t n_pending, cap_pending;

    struct store_watch *watches; /* singly linked, in order of addition */
    unsigned dispatching;        /* depth of watch dispatch */
    uint64_t watch_gen;          /* bumped at each dispatch */
};

struct store_txn {
    store *s;
    MDB_txn *txn;
};

/* Translate an LMDB return code to -errno, with "what: mdb_strerror" in errmsg. */
int store__lmdb_err(int rc, char *errmsg, size_t errmsg_size, const char *what);
/* "nodes", "services", ...; NULL for an out-of-range table. */
const char *store__table_name(enum store_table t);
bool store__table_valid(int t);
/* Non-empty, at most STORE_ID_MAX bytes. */
bool store__id_valid(const char *id, size_t len);

/* Seal (seal true) or open an object value with AAD "<table>/<id>". Opening: -ENOMEM, or
 * -EBADMSG for anything else. */
int store__value_crypt(const store *s, bool seal, enum store_table t, const char *id, size_t id_len,
                       const void *in, size_t in_len, uint8_t **ret, size_t *ret_len);
/* Open a blob sealed with the DEK under aad. -ENOMEM, or -EBADMSG for anything else, with
 * "<what> does not open with this cluster's data key (...)" in errmsg when what is set. */
int store__open_blob(const store *s, const char *aad, size_t aad_len, const void *in, size_t in_len,
                     uint8_t **ret, size_t *ret_len, const char *what, char *errmsg,
                     size_t errmsg_size);
/* Wipe and free a plaintext buffer. */
void store__free_plain(uint8_t *p, size_t len);

/* Fetch and open the current value of t/id in txn. -ENOENT if missing. */
int store__get_plain(const store *s, MDB_txn *txn, enum store_table t, const char *id,
                     uint8_t **ret, size_t *ret_len, char *errmsg, size_t errmsg_size);
/* Replace t/id: old (plaintext, NULL if absent) -> value (NULL to delete). Seals, writes,
 * and keeps the task indexes in step. -EINVAL if a task value does not decode. */
int store__write_object(const store *s, MDB_txn *txn, enum store_table t, const char *id,
                        const uint8_t *old, size_t old_len, const uint8_t *value, size_t len,
                        char *errmsg, size_t errmsg_size);
/* Write t/id (absent before) as an already sealed value, keeping the task indexes in step
 * (a task is opened for them: -EBADMSG if it does not open, -EINVAL if not a Task). */
int store__put_sealed(const store *s, MDB_txn *txn, enum store_table t, const char *id,
                      const uint8_t *sealed, size_t len, char *errmsg, size_t errmsg_size);
int store__meta_put_applied(const store *s, MDB_txn *txn, uint64_t index, char *errmsg,
                            size_t errmsg_size);
int store__meta_get_applied(const store *s, MDB_txn *txn, uint64_t *ret, char *errmsg,
                            size_t errmsg_size);

/* Undo the open batch (if any): abort its transaction, return the applied index to the last
 * commit, free its events and run its deferred callbacks with status (apply.c). */
void store__batch_abort(store *s, int status);

/* Call every live watcher for each event, in order (watch.c). */
void store__watch_dispatch(store *s, const struct store_event *evs, size_t n);
void store__watch_free_all(store *s);

/* keys.c: the data key that sealed a record (by the key id in its header); NULL if none. */
const struct pki_aead_key *store__key_for(const store *s, const void *sealed, size_t len);
/* The key check record (the cluster id sealed under the current key). */
int store__keycheck_write(const store *s, MDB_txn *txn, char *errmsg, size_t errmsg_size);
