/* Test harness for manager/: one uv loop and temp state dir per test, the manager run
 * in-process, calls over its control socket with net/'s async client, bounded waits. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "manager/internal.h"
#include "manager/manager.h"
#include "net/rpc.h"
#include "proto/frame.h"

/* Every wait in a test is bounded by this (raft elects itself within ~1-2 s). */
#define MT_WAIT_MS 15000

struct mt {
    uv_loop_t loop;
    char dir[128];
    char sock[192];
    struct mgr_config cfg;
    mgr *m;
    net_client *c;
};

/* An answer to one call; payload is malloc'd (freed by mt_reply_clear). */
struct mt_reply {
    bool done;
    int status;
    char error[512];
    uint8_t *payload;
    size_t len;
};

/* cmocka setup/teardown: loop, temp dir, default config (127.0.0.1:0, advertise
 * 127.0.0.1, hostname "mt-host"). Teardown stops the manager, closes every handle and
 * removes the dir, also after a failed assertion. */
int mt_setup(void **state);
int mt_teardown(void **state);

/* Run the loop until *flag or ms pass (a uv timer is the watchdog); returns *flag. */
bool mt_run_until(struct mt *t, const bool *flag, uint64_t ms);
void mt_run_for(struct mt *t, uint64_t ms);

/* Start (init or resume) and wait for ready. Returns the status of mgr_start or of the
 * ready callback; errmsg gets the message. On failure t->m is NULL and the loop has
 * finished the manager's closes. */
int mt_start(struct mt *t, bool init, char *errmsg, size_t size);
/* mt_start that must succeed. */
void mt_start_ok(struct mt *t, bool init);
/* Close the client and stop the manager, waiting for the stop callback. */
void mt_stop(struct mt *t);

/* Send a call (connecting the client first if needed); the reply lands in *r. */
void mt_call_async(struct mt *t, const char *method, const ProtobufCMessage *req,
                   struct mt_reply *r);
/* Send and wait; returns r->status. */
int mt_call(struct mt *t, const char *method, const ProtobufCMessage *req, struct mt_reply *r);
void mt_reply_clear(struct mt_reply *r);

/* Typed helpers (assert success). Free results with the matching free_unpacked. */
Swarm__ListNodesResponse *mt_list_nodes(struct mt *t);
Swarm__GetClusterResponse *mt_get_cluster(struct mt *t);
/* GetJoinToken; role 0 worker, 1 manager; buf >= PKI_TOKEN_LEN + 1. */
void mt_join_token(struct mt *t, int role, bool rotate, char *buf, size_t size);

/* A CSR for a fresh key (free with free()). */
char *mt_csr(void);

/* Visit every regular file under dir (recursively): fn(path, data, len, ud). */
void mt_foreach_file(const char *dir,
                     void (*fn)(const char *path, const uint8_t *data, size_t len, void *ud),
                     void *ud);
/* A call with a raw payload; returns r->status. */
int mt_call_raw(struct mt *t, const char *method, const uint8_t *buf, size_t len,
                struct mt_reply *r);
