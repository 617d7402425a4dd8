/* store: the cluster's objects in LMDB, one named database per table plus indexes, every
 * value sealed with the cluster's data key (DEK). Changes arrive as proposals (batches of
 * create/update/delete) that store/ encodes and seals for raft, and applies in one write
 * transaction at a raft index, then announces to in-process watchers. Knows nothing of raft. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"

/* Values equal swarm.proto's StoreTable. */
enum store_table {
    STORE_NODES = 1,
    STORE_SERVICES = 2,
    STORE_TASKS = 3,
    STORE_SECRETS = 4,
    STORE_CLUSTER = 5,
};
#define STORE_TABLE_MAX 5
/* Object IDs (keys) are 1..STORE_ID_MAX bytes. */
#define STORE_ID_MAX 64

/* Values equal swarm.proto's StoreActionKind. */
enum store_action_kind {
    STORE_CREATE = 0, /* -EEXIST if the key exists */
    STORE_UPDATE = 1, /* -ENOENT if missing */
    STORE_DELETE = 2, /* -ENOENT if missing */
    STORE_PUT = 3,    /* create or replace */
};

enum store_index {
    STORE_TASKS_BY_SERVICE = 1, /* Task.service_id -> task ids */
    STORE_TASKS_BY_NODE = 2,    /* Task.node_id -> task ids */
};

struct store_action {
    enum store_action_kind kind;
    enum store_table table;
    const char *id;
    const uint8_t *value; /* the encoded object (swarm.proto Node, Task, ...); NULL for DELETE */
    size_t len;
};

typedef struct store store;

/* Open (creating if needed) the LMDB environment in dir (0700). cluster_id binds sealed
 * proposals to this cluster (AAD). The store keeps a copy of dek. -EBADMSG (with errmsg) if
 * an existing store was written under another data key or cluster id. */
int store_open(const char *dir, const char *cluster_id, const struct pki_aead_key *dek, store **ret,
               char *errmsg, size_t errmsg_size);
/* The same with the other keys of a data key rotation (retired[i]: old[i] once sealed),
 * held before the store is opened: its key check may be sealed under any of them. */
int store_open_keys(const char *dir, const char *cluster_id, const struct pki_aead_key *dek,
                    const struct pki_aead_key *old, const bool *retired, unsigned n_old,
                    unsigned flags, store **ret, char *errmsg, size_t errmsg_size);
/* flags: the owner can rebuild the whole store (raft's snapshot and log hold all of it), so
 * commits are not flushed; a store that was open when the machine went down (another boot)
 * is emptied at open: store_was_reset says so, and the owner rebuilds it. */
#define STORE_OPEN_REBUILDABLE 1u
bool store_was_reset(const store *s);
/* An open batch is undone (as if the process had stopped before its commit): its deferred
 * callbacks run with -ECANCELED. */
void store_close(store *s);
/* Raft index of the last applied proposal (0 for a fresh store). */
uint64_t store_applied_index(const store *s);

/* ------------------------------------------------------------------ proposals */

/* Encode a batch as a Proposal and seal it with the DEK (AAD: cluster id + key id). */
int store_proposal_seal(store *s, uint64_t request_id, const struct store_action *actions, size_t n,
                        uint8_t **ret_buf, size_t *ret_len);
/* Open and apply a sealed proposal at raft index `index` in one write transaction.
 * index <= store_applied_index: skipped before opening, returns 1 (raft replaying after a
 * restart; entries sealed under an older data key are not opened again).
 * Otherwise returns 0, or the first failing action's -EEXIST/-ENOENT/-EINVAL (with errmsg);
 * a failed proposal changes no object but still advances the applied index (deterministic
 * on every manager). -EINVAL also covers a bad table/id and a TASKS value that is not a Task.
 * -EBADMSG if it does not open/decode (a fatal store error for the caller).
 * Any other error (-EIO, -ENOSPC, -ENOMEM: local trouble) applies nothing, not even the
 * index; the caller should treat it as fatal.
 * *ret_request_id (optional) gets the proposal's request id whenever the proposal decoded:
 * on 0 and on -EEXIST/-ENOENT/-EINVAL (so the caller can answer the waiting client); a
 * skipped entry (1) is not opened and yields none.
 * Watchers are called after the commit, once per action, in order; none for a failed or
 * skipped proposal. With a batch open (below), the proposal joins it and the whole batch is
 * committed before this returns. */
int store_apply(store *s, uint64_t index, const uint8_t *buf, size_t len, uint64_t *ret_request_id,
                char *errmsg, size_t errmsg_size);

/* ------------------------------------------------------------------ batched applies */

/* As store_apply, but into the store's open batch: one LMDB write transaction, begun by the
 * first batched apply, that later applies read through and add to. Nothing of the batch is
 * visible to readers, on disk, or announced to watchers before store_batch_commit; the
 * applied index (store_applied_index) advances at once. Same results as store_apply, except:
 * a local error (-EIO, -ENOSPC, -ENOMEM from LMDB) aborts the WHOLE batch (every proposal
 * since the batch began is undone, store_applied_index goes back to the last commit, and
 * the deferred callbacks get the error); -EBADMSG leaves the batch as it was. */
int store_apply_batched(store *s, uint64_t index, const uint8_t *buf, size_t len,
                        uint64_t *ret_request_id, char *errmsg, size_t errmsg_size);
/* Commit the open batch (0 at once without one): the applied index and every proposal of the
 * batch in one transaction. Then, in apply order, each proposal's watchers are called and
 * the callbacks deferred after it (store_batch_defer) run with status 0. On failure the batch
 * is undone as above and the deferred callbacks run with the error, which is returned. */
int store_batch_commit(store *s, char *errmsg, size_t errmsg_size);
bool store_batch_open(const store *s);
/* Proposals applied (or refused) in the open batch, and when it was opened (CLOCK_MONOTONIC
 * ns); 0 without one. */
size_t store_batch_entries(const store *s);
uint64_t store_batch_begun(const store *s);

/* fn(status, userdata) runs once the open batch is committed (status 0, after the watchers of
 * the proposals applied before this call) or undone (status < 0, also on store_close).
 * Returns 1 without queuing (and without calling fn) if no batch is open: the caller goes on
 * at once. -ENOMEM if it cannot be queued. */
typedef void (*store_commit_fn)(int status, void *userdata);
int store_batch_defer(store *s, store_commit_fn fn, void *userdata);

/* ------------------------------------------------------------------ reads */

/* A consistent read-only view; it does not see later applies. Keep it short-lived (an
 * open reader pins old pages in the file). */
typedef struct store_txn store_txn;

int store_read_begin(store *s, store_txn **ret);
void store_read_end(store_txn *t);
/* The opened value of id, malloc'd (the caller wipes it with sw_erase if it may hold a
 * secret). -ENOENT if missing, -EBADMSG if the stored value does not open. */
int store_get(store_txn *t, enum store_table table, const char *id, uint8_t **ret_value,
              size_t *ret_len);
/* Visit every object of a table in key order. fn returns 0 to go on, >0 to stop (returned),
 * <0 to stop with that error. value is valid only during the call. */
typedef int (*store_iter_fn)(const char *id, const uint8_t *value, size_t len, void *userdata);
int store_foreach(store_txn *t, enum store_table table, store_iter_fn fn, void *userdata);
/* Visit the tasks whose service_id/node_id equals key (tasks with an empty service_id or
 * node_id are in no entry of that index). Values are the opened Task objects. */
int store_foreach_index(store_txn *t, enum store_index index, const char *key, store_iter_fn fn,
                        void *userdata);

/* ------------------------------------------------------------------ data keys */

#define STORE_OLD_KEYS_MAX 4 /* data keys kept besides the current one */

/* A data key rotation: add the next key (retired false: it opens, it does not seal yet) or
 * one that sealed before (retired true, when loading); -EEXIST if the store holds that id,
 * -E2BIG when STORE_OLD_KEYS_MAX keys besides the current one are held already. */
int store_add_key(store *s, const struct pki_aead_key *k, bool retired);
/* Seal everything new under key id (held); the former current key stays to open what it
 * sealed. -ENOKEY if the store does not hold it. */
int store_use_key(store *s, uint32_t id);
uint32_t store_key_id(const store *s);
/* The last raft index applied whose entry a key other than the current one sealed (0:
 * none since the store opened). */
uint64_t store_retired_used(const store *s);
/* Forget the next keys of rotations that never took over (they sealed nothing). */
void store_drop_next_keys(store *s);
void store_current_key(const store *s, struct pki_aead_key *ret);
/* The keys held besides the current one (up to max into out, and whether each is retired
 * into ret_retired, which may be NULL); returns how many there are. */
unsigned store_old_keys(const store *s, struct pki_aead_key *out, bool *ret_retired, unsigned max);
/* Re-seal every stored value (and the key check) that another key sealed under the current
 * one, in one write transaction (an open batch is committed first); returns how many values
 * changed. */
int store_reseal(store *s, char *errmsg, size_t errmsg_size);
/* Forget the retired keys (once nothing on disk needs them: the store re-sealed and a
 * snapshot under the current key supersedes the raft entries they sealed); the next key
 * of a rotation under way stays. */
void store_drop_old_keys(store *s);

/* ------------------------------------------------------------------ watch */

struct store_event {
    enum store_action_kind kind; /* CREATE, UPDATE or DELETE (a PUT reports CREATE or UPDATE) */
    enum store_table table;
    const char *id;
    const uint8_t *old_value; /* NULL for CREATE */
    size_t old_len;
    const uint8_t *value; /* NULL for DELETE */
    size_t len;
    uint64_t index;
};

typedef struct store_watch store_watch;
typedef void (*store_watch_fn)(const struct store_event *ev, void *userdata);

int store_watch_add(store *s, store_watch_fn fn, void *userdata, store_watch **ret);
/* Safe to call from inside a watch callback. A watcher added from a callback sees only
 * later proposals. store_close frees the watchers still registered. */
void store_watch_remove(store_watch *w);

/* ------------------------------------------------------------------ snapshots */

/* Every table and the applied index, encoded (StoreSnapshot) and sealed with the DEK. An open
 * batch is committed first (store_batch_commit; its error is returned). */
int store_snapshot(store *s, uint8_t **ret_buf, size_t *ret_len);
/* Replace the whole content with a sealed snapshot (raft install/restore). An open batch is
 * committed first. Watchers are not called; the caller resynchronises. */
int store_restore(store *s, const uint8_t *buf, size_t len, char *errmsg, size_t errmsg_size);
/* Flush committed transactions to disk (before raft truncates its log behind a snapshot);
 * an open batch is not committed by this. */
int store_sync(store *s);
