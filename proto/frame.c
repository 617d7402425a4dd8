/* Frame codec: length-prefixed protobuf frames, incremental decoding with a size cap. */
#include "proto/frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int proto_pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    protobuf_c_message_pack(m, buf);
    *ret_buf = buf;
    *ret_len = n;
    return 0;
}

int proto_frame_encode(const struct proto_frame *f, size_t max_frame, uint8_t **ret_buf,
                       size_t *ret_len)
{
    Swarm__Frame m = SWARM__FRAME__INIT;
    m.id = f->id;
    m.kind = f->kind;
    m.method = (char *)(f->method ? f->method : "");
    m.status = f->status;
    m.error = (char *)(f->error ? f->error : "");
    m.payload.data = (uint8_t *)f->payload;
    m.payload.len = f->payload ? f->payload_len : 0;

    size_t n = swarm__frame__get_packed_size(&m);
    if (n > max_frame || n > UINT32_MAX)
        return -EMSGSIZE;
    uint8_t *buf = malloc(PROTO_FRAME_HEADER + n);
    if (!buf)
        return -ENOMEM;
    buf[0] = (uint8_t)(n >> 24);
    buf[1] = (uint8_t)(n >> 16);
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
    swarm__frame__pack(&m, buf + PROTO_FRAME_HEADER);
    *ret_buf = buf;
    *ret_len = PROTO_FRAME_HEADER + n;
    return 0;
}

void proto_frame_decoder_init(struct proto_frame_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame ? max_frame : PROTO_FRAME_MAX_DEFAULT;
}

void proto_frame_decoder_finish(struct proto_frame_decoder *d)
{
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

int proto_frame_decoder_feed(struct proto_frame_decoder *d, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if (d->off > 0) {
        /* drop the frames already taken, once per feed (not once per frame) */
        memmove(d->buf, d->buf + d->off, d->len - d->off);
        d->len -= d->off;
        d->off = 0;
    }
    if (len > SIZE_MAX / 2 - d->len)
        return -ENOMEM;
    if (d->len + len > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < d->len + len)
            cap *= 2;
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb)
            return -ENOMEM;
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    return 0;
}

int proto_frame_decoder_next(struct proto_frame_decoder *d, Swarm__Frame **ret)
{
    size_t avail = d->len - d->off;
    const uint8_t *p = d->buf + d->off;
    if (avail < PROTO_FRAME_HEADER)
        return 0;
    size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
    if (n > d->max_frame)
        return -EMSGSIZE;
    if (avail - PROTO_FRAME_HEADER < n)
        return 0;
    Swarm__Frame *f = swarm__frame__unpack(NULL, n, p + PROTO_FRAME_HEADER);
    d->off += PROTO_FRAME_HEADER + n;
    if (d->off == d->len)
        d->off = d->len = 0;
    if (!f)
        return -EBADMSG;
    if (f->kind > SWARM__FRAME_KIND__FRAME_CANCEL || f->kind < 0) {
        swarm__frame__free_unpacked(f, NULL);
        return -EBADMSG;
    }
    *ret = f;
    return 1;
}

size_t proto_frame_decoder_pending(const struct proto_frame_decoder *d)
{
    return d->len - d->off;
}

bool proto_strict(const ProtobufCMessage *m)
{
    if (!m)
        return true;
    if (m->n_unknown_fields)
        return false;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const ProtobufCMessage *const *v =
                *(const ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t j = 0; j < n; j++)
                if (!proto_strict(v[j]))
                    return false;
        } else if (!proto_strict(*(const ProtobufCMessage *const *)(base + f->offset))) {
            return false;
        }
    }
    return true;
}
