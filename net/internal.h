/* net internals: the framed transport (libuv stream + optional TLS over memory BIOs)
 * shared by server connections and the async client. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/rpc.h"
#include "proto/frame.h"

#define net__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct net_transport;

/* A libuv stream handle of either kind (TCP or Unix). */
union net__stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

struct net_transport_ops {
    /* TLS handshake completed (never called for plaintext). */
    void (*on_handshake)(struct net_transport *t);
    /* One decoded frame; the transport frees it after the call. The owner may close
     * the transport from here. */
    void (*on_frame)(struct net_transport *t, Swarm__Frame *f);
    /* Closing began (exactly once); t->err/t->errmsg say why (err 0: closed locally). */
    void (*on_closing)(struct net_transport *t);
    /* Every handle is closed; the owner may free the memory now. */
    void (*on_closed)(struct net_transport *t);
};

/* Raw mode: bytes (decrypted) after framing ended. */
typedef void (*net__raw_fn)(struct net_transport *t, const uint8_t *data, size_t len);

/* A stream carrying frames. Embedded in its owner; both handles close together. */
struct net_transport {
    union net__stream h;
    uv_timer_t timer; /* free for the owner's use (timeouts) */
    uv_shutdown_t shutdown_req;
    const struct net_transport_ops *ops;
    SSL *ssl;
    BIO *rbio; /* ciphertext from the network, read by OpenSSL */
    BIO *wbio; /* ciphertext written by OpenSSL, to flush to the network */
    struct proto_frame_decoder dec;
    size_t max_frame;
    bool is_tcp;
    bool tls_done;
    bool reading;
    bool closing;
    bool shutting_down;
    bool error_frames;  /* server side: a bad frame gets a RESPONSE id 0 before the close */
    net__raw_fn raw_cb; /* set: no more frames, bytes go here */
    bool dispatching;   /* inside dispatch_frames */
    int handles_open;
    int err; /* first error recorded (negative errno), 0 if none */
    char errmsg[256];
};

/* A connection in raw mode (net_call_reply_raw / net_client_call_raw). */
struct net_raw {
    struct net_transport *t;
    net_raw_fn cb;
    void *userdata;
    bool user_closed;   /* net_raw_close: no callback any more */
    bool ended;         /* the end callback ran */
    net_client *client; /* client side; NULL on the server */
};
/* Tell the user the raw connection ended (once; not after net_raw_close). */
void net__raw_end(struct net_raw *r, int status, const char *error);

/* Initialise the stream handle (TCP or pipe) and the timer. */
int net__transport_init(struct net_transport *t, uv_loop_t *loop, bool is_tcp, size_t max_frame,
                        const struct net_transport_ops *ops);
/* Attach TLS (server: accept state; client: connect state and send the ClientHello).
 * Call after the stream is connected. */
int net__transport_start_tls(struct net_transport *t, SSL_CTX *ctx, bool server);
int net__transport_start_read(struct net_transport *t);
/* Encode and send one frame. -EMSGSIZE if it does not fit max_frame; -EPIPE if closing. */
int net__transport_send(struct net_transport *t, const struct proto_frame *f);
/* Leave framing for good: every later byte goes to cb, starting with any already buffered
 * after the last frame (delivered once the current frame's callback returns). */
void net__transport_go_raw(struct net_transport *t, net__raw_fn cb);
/* Send bytes as they are (encrypted on TLS). -EPIPE if closing. */
int net__transport_send_bytes(struct net_transport *t, const uint8_t *data, size_t len);
/* Record err/msg (if no error yet) and close everything at once. Idempotent. */
void net__transport_close(struct net_transport *t, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, but let queued writes (a final error frame, a TLS alert) reach the peer first. */
void net__transport_close_flush(struct net_transport *t, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill a peer from the TLS peer certificate: NET_PEER_NODE when it is a swarm node cert,
 * NET_PEER_ANONYMOUS when there is none; -EINVAL when it is not a node certificate. */
int net__peer_from_ssl(SSL *ssl, struct net_peer *peer);
/* 0 if the server's peer (from net__peer_from_ssl) meets e; -EPERM with the reason in
 * msg otherwise. */
int net__server_expected(const struct net_peer *server, const struct net_expect *e, char *msg,
                         size_t msg_size);
/* "IP:PORT" of the remote end of a TCP handle. */
void net__tcp_peer_addr(const uv_tcp_t *tcp, char *buf, size_t size);
