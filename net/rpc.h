/* net: TLS 1.3 streams on libuv (OpenSSL memory BIOs) and plain Unix-socket streams,
 * carrying the framed RPC of proto/frame.h: unary calls and server streams, with the
 * peer's verified identity handed to every handler and per-method authorization. */
#pragma once

/* Writes to a peer that went away raise SIGPIPE: processes using net/ ignore it
 * (signal(SIGPIPE, SIG_IGN)) at startup, as libuv expects. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/addr.h"
#include "pki/pki.h"

/* ------------------------------------------------------------------ peers */

enum net_peer_kind {
    NET_PEER_ANONYMOUS = 0, /* TLS without a client certificate (a joining node) */
    NET_PEER_NODE = 1,      /* TLS with a certificate chained to the cluster root */
    NET_PEER_LOCAL = 2,     /* the Unix control socket */
};

struct net_peer {
    enum net_peer_kind kind;
    struct pki_identity id; /* NET_PEER_NODE only */
    uid_t uid;              /* NET_PEER_LOCAL only (SO_PEERCRED) */
    char addr[64];          /* "IP:PORT" of the remote end, or "unix" */
};

/* Frames from a peer without a certificate (NET_PEER_ANONYMOUS) are capped at this size
 * (or max_frame if lower): such a peer may only fetch the root CA and ask for a certificate. */
#define NET_ANONYMOUS_MAX_FRAME (64u * 1024u)

/* Who may call a method. */
enum net_auth {
    NET_AUTH_ANY = 0,     /* anyone, also without a certificate (GetRootCA, IssueNodeCertificate) */
    NET_AUTH_NODE = 1,    /* a node certificate of this cluster (worker or manager), or local */
    NET_AUTH_MANAGER = 2, /* a manager certificate of this cluster, or local */
    NET_AUTH_LOCAL = 3,   /* the local control socket only */
};

/* ------------------------------------------------------------------ server */

typedef struct net_server net_server;
typedef struct net_call net_call;

struct net_server_config {
    size_t max_frame;              /* 0: PROTO_FRAME_MAX_DEFAULT (16 MiB) */
    uint64_t handshake_timeout_ms; /* 0: 10 s */
    uint64_t idle_timeout_ms; /* 0: 5 min without a frame (open streams do not count as idle) */
    unsigned max_connections; /* 0: 1024, counted for TCP and for Unix peers separately;
                               * extra connections are accepted and closed at once */
    const char *cluster_id;   /* certificate peers must carry O = this (NULL: not checked) */
    unsigned max_calls_per_connection; /* 0: 256 calls in flight (unreplied, open streams) on
                                        * one connection; more get -EBUSY, the connection
                                        * stays open */
};

/* A handler runs on the loop thread. It must end the call exactly once with
 * net_call_reply (now or later, e.g. after a raft commit); for a stream it may first
 * send any number of messages with net_call_send. If the connection goes away, the
 * call stays valid until replied: net_call_reply then only frees it. */
typedef void (*net_handler_fn)(net_call *call, const uint8_t *payload, size_t len, void *userdata);
/* (payload is valid only while the handler runs; copy what a deferred reply needs.) */

/* Extra check run for every certificate peer after the handshake (e.g. removed nodes).
 * Return 0 to accept, <0 to close the connection (-EAGAIN: the peer is told to try again,
 * e.g. a replica that has not caught up; anything else: refused). It may lower the peer's
 * role (a manager certificate of a node that is a manager no more acts as a worker's). */
typedef int (*net_authorize_fn)(struct net_peer *peer, void *userdata);

int net_server_create(uv_loop_t *loop, const struct net_server_config *cfg, net_server **ret);
int net_server_register(net_server *s, const char *method, enum net_auth auth, net_handler_fn fn,
                        void *userdata);
void net_server_set_authorize(net_server *s, net_authorize_fn fn, void *userdata);
/* Handle every method that is not registered (net_call_method names it) with fn, under
 * auth, instead of answering -ENOSYS (a locked manager answers everything with "locked"). */
void net_server_set_fallback(net_server *s, enum net_auth auth, net_handler_fn fn, void *userdata);
/* Listen for TLS on addr (port 0: ephemeral); *ret_bound (optional) gets the real address.
 * ctx from pki_tls_server_ctx; the server takes a reference (SSL_CTX_up_ref). */
int net_server_listen_tcp(net_server *s, const struct sw_addr *addr, SSL_CTX *ctx,
                          struct sw_addr *ret_bound, char *errmsg, size_t errmsg_size);
/* Replace the TLS context for new connections (certificate renewal). */
void net_server_set_tls_ctx(net_server *s, SSL_CTX *ctx);
/* Listen on a Unix socket (plaintext, peers are NET_PEER_LOCAL); an existing stale socket
 * file is replaced; the file gets the given mode (0600). */
int net_server_listen_unix(net_server *s, const char *path, unsigned mode, char *errmsg,
                           size_t errmsg_size);
/* Close listeners and every connection; cb (optional) runs once all handles are closed,
 * after which the server is freed. */
void net_server_close(net_server *s, void (*cb)(void *userdata), void *userdata);
/* Close every open connection of the node with this certificate node ID (after it was
 * removed from the cluster): the peer gets -EPERM as the reason, its open calls are gone
 * (their on_gone callbacks run). Returns how many connections were closed. */
unsigned net_server_close_peer(net_server *s, const char *node_id);
/* Number of open connections (for tests and limits). */
unsigned net_server_connections(const net_server *s);

const struct net_peer *net_call_peer(const net_call *call);
const char *net_call_method(const net_call *call);
/* Send one message on a stream. -EPIPE when the peer went away or cancelled. */
int net_call_send(net_call *call, const uint8_t *payload, size_t len);
/* End the call: status 0 with payload, or a negative errno with a one-line error. Frees
 * the call. */
void net_call_reply(net_call *call, int status, const char *error, const uint8_t *payload,
                    size_t len);
/* The peer went away or cancelled: replies are dropped. */
bool net_call_gone(const net_call *call);
/* cb runs once if the peer goes away or cancels before the call is replied (it may reply
 * from inside cb). If the call is already gone when this is set, cb is not called: check
 * net_call_gone() after setting it. */
void net_call_on_gone(net_call *call, void (*cb)(net_call *call, void *userdata), void *userdata);

/* ------------------------------------------------------------------ clients */

/* What a client requires of the server's certificate, beyond chaining to the roots in its
 * TLS context (which any node of the cluster, a worker too, passes). A server that does
 * not meet it fails the connect with -EPERM and a reason. */
struct net_expect {
    const char *cluster_id; /* O = this (NULL: any cluster) */
    bool manager;           /* OU = swarm-manager */
};

/* ------------------------------------------------------------------ async client */

typedef struct net_client net_client;

typedef void (*net_connect_fn)(net_client *c, int status, const char *error, void *userdata);
/* For each stream message: final=false, status 0. Then once: final=true with the status,
 * error and payload of the RESPONSE (or status <0 and an error if the connection died). */
typedef void (*net_reply_fn)(net_client *c, int status, const char *error, const uint8_t *payload,
                             size_t len, bool final, void *userdata);

/* Connect and handshake; cb gets the outcome exactly once: status 0 once the server has
 * accepted this peer (it greets with a RESPONSE frame id 0, status 0; a RESPONSE id 0
 * with a negative status is the server's reason for closing), or a negative errno and a
 * one-line error (refused, TLS failure, timeout, -ECANCELED if closed first).
 * Whatever happens, end with net_client_close (allowed inside any callback); after a
 * connection loss the object stays valid (calls fail with -EPIPE) until then.
 * ctx from pki_tls_client_ctx; the client takes a reference. */
int net_client_connect_tcp(uv_loop_t *loop, const struct sw_addr *addr, SSL_CTX *ctx,
                           uint64_t timeout_ms, net_connect_fn cb, void *userdata,
                           net_client **ret);
/* The same, checking the server's certificate against expect (NULL: no check; copied). */
int net_client_connect_tcp_expect(uv_loop_t *loop, const struct sw_addr *addr, SSL_CTX *ctx,
                                  const struct net_expect *expect, uint64_t timeout_ms,
                                  net_connect_fn cb, void *userdata, net_client **ret);
int net_client_connect_unix(uv_loop_t *loop, const char *path, uint64_t timeout_ms,
                            net_connect_fn cb, void *userdata, net_client **ret);
/* The server's identity (NET_PEER_NODE if it showed a swarm node certificate) and its
 * certificate chain as PEM (for pinning during join); valid after a successful connect.
 * Over Unix the peer is NET_PEER_LOCAL and the PEM is NULL. */
const struct net_peer *net_client_server_peer(const net_client *c);
const char *net_client_server_cert_pem(const net_client *c);
int net_client_call(net_client *c, const char *method, const uint8_t *payload, size_t len,
                    net_reply_fn cb, void *userdata, uint64_t *ret_id);
/* Stop a call: sends CANCEL; its callback is not called again. -ENOENT if not pending. */
int net_client_cancel(net_client *c, uint64_t id);
/* Close; pending calls get a final reply with -ECANCELED; freed after the handles close. */
void net_client_close(net_client *c);

/* ------------------------------------------------------------------ raw byte streams */

/* After one call, a connection may leave framing for good and carry bytes both ways as
 * they are (raft traffic between managers: raft_uv frames its messages itself). The peer
 * was authenticated by the handshake and the call. */
typedef struct net_raw net_raw;
/* Bytes from the peer (status 0), or once, status < 0 with error: the connection ended
 * (the net_raw is gone after this returns). Not called after net_raw_close. */
typedef void (*net_raw_fn)(net_raw *r, int status, const char *error, const uint8_t *data,
                           size_t len, void *userdata);

/* Server: answer call with status 0 and payload, then switch its connection to raw bytes.
 * Other calls open on the connection are ended (gone). */
int net_call_reply_raw(net_call *call, const uint8_t *payload, size_t len, net_raw_fn cb,
                       void *userdata, net_raw **ret);
/* Client: a call whose successful final reply switches the connection to raw bytes: the
 * switch happens before cb sees the reply (net_client_raw is valid from then on), and the
 * bytes the server sends after its reply go to raw_cb. Other pending calls fail with
 * -ECANCELED at the switch. A failed reply leaves the connection framed. */
int net_client_call_raw(net_client *c, const char *method, const uint8_t *payload, size_t len,
                        net_reply_fn cb, void *userdata, net_raw_fn raw_cb, void *raw_userdata);
net_raw *net_client_raw(net_client *c);
/* Queue bytes for the peer. -EPIPE once the connection is closing. */
int net_raw_write(net_raw *r, const uint8_t *data, size_t len);
/* Bytes queued for the peer and not yet written to the socket (for backpressure). */
size_t net_raw_queued(const net_raw *r);
/* End the connection; no callback follows. For a client's raw stream this is
 * net_client_close. */
void net_raw_close(net_raw *r);

/* ------------------------------------------------------------------ blocking client */

/* For CLIs (swarmctl) and tests: one connection, one call at a time, blocking I/O. */
typedef struct net_sync net_sync;

int net_sync_connect_unix(const char *path, uint64_t timeout_ms, net_sync **ret, char *errmsg,
                          size_t errmsg_size);
int net_sync_connect_tcp(const struct sw_addr *addr, SSL_CTX *ctx, uint64_t timeout_ms,
                         net_sync **ret, char *errmsg, size_t errmsg_size);
/* The same, checking the server's certificate against expect (NULL: no check). */
int net_sync_connect_tcp_expect(const struct sw_addr *addr, SSL_CTX *ctx,
                                const struct net_expect *expect, uint64_t timeout_ms,
                                net_sync **ret, char *errmsg, size_t errmsg_size);
/* Unary call (timeout_ms of the connect applies to each call; stream messages are
 * skipped). Returns <0 on a transport error (ret_error says what); otherwise 0 and
 * *ret_status/ret_error carry the server's answer and *ret_payload (malloc'd, may be NULL
 * when empty) its payload. */
int net_sync_call(net_sync *c, const char *method, const uint8_t *payload, size_t len,
                  int *ret_status, char *ret_error, size_t error_size, uint8_t **ret_payload,
                  size_t *ret_len);
void net_sync_close(net_sync *c);
