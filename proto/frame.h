/* The frame format: 4-byte big-endian length, then a protobuf Frame (proto/swarm.proto). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/swarm.pb-c.h"

#define PROTO_FRAME_MAX_DEFAULT (16u * 1024u * 1024u)
#define PROTO_FRAME_HEADER 4u

struct proto_frame {
    uint64_t id;
    Swarm__FrameKind kind;
    const char *method; /* REQUEST */
    int32_t status;     /* RESPONSE */
    const char *error;  /* RESPONSE */
    const uint8_t *payload;
    size_t payload_len;
};

/* Encode header + Frame into a new malloc'd buffer. -EMSGSIZE if above max_frame. */
int proto_frame_encode(const struct proto_frame *f, size_t max_frame, uint8_t **ret_buf,
                       size_t *ret_len);

/* Incremental decoder: feed whatever bytes arrived, then take whole frames out. */
struct proto_frame_decoder {
    uint8_t *buf;
    size_t off; /* start of the bytes not yet taken (frames are taken without moving data) */
    size_t len; /* end of the buffered bytes */
    size_t cap;
    size_t max_frame;
};

void proto_frame_decoder_init(struct proto_frame_decoder *d, size_t max_frame);
void proto_frame_decoder_finish(struct proto_frame_decoder *d);
/* Append bytes. -ENOMEM. */
int proto_frame_decoder_feed(struct proto_frame_decoder *d, const uint8_t *data, size_t len);
/* 1 and *ret (free with swarm__frame__free_unpacked(f, NULL)) when a whole frame is
 * buffered; 0 when more bytes are needed; -EMSGSIZE when the announced length exceeds
 * max_frame; -EBADMSG when the frame does not decode or has an unknown kind. After an
 * error the decoder is unusable: close the connection. */
int proto_frame_decoder_next(struct proto_frame_decoder *d, Swarm__Frame **ret);
/* Bytes buffered but not yet a whole frame (a truncated frame at EOF has pending > 0). */
size_t proto_frame_decoder_pending(const struct proto_frame_decoder *d);

/* Encode/decode any protobuf-c message into a malloc'd buffer; -ENOMEM. */
int proto_pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len);

/* True when a decoded message (and every message inside it) carries no unknown fields.
 * Requests that fail this are refused: protobuf-c keeps such fields and may write them
 * back in a form it cannot read (a field number 0 in an overlong tag, for one). */
bool proto_strict(const ProtobufCMessage *m);
