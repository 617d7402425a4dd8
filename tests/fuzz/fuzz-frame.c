/* Fuzz target: the incremental frame decoder (proto/frame.h), fed in random-sized chunks.
 * Input: one seed byte choosing the chunk sizes, then the byte stream. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

#define FUZZ_MAX_FRAME (64u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-encode a decoded frame and decode it again: the fields must survive. */
static void roundtrip(const Swarm__Frame *f)
{
    struct proto_frame pf = {
        .id = f->id,
        .kind = f->kind,
        .method = f->method,
        .status = f->status,
        .error = f->error,
        .payload = f->payload.data,
        .payload_len = f->payload.len,
    };
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_frame_encode(&pf, FUZZ_MAX_FRAME * 2, &buf, &len) < 0)
        abort();
    struct proto_frame_decoder d;
    proto_frame_decoder_init(&d, FUZZ_MAX_FRAME * 2);
    Swarm__Frame *g = NULL;
    if (proto_frame_decoder_feed(&d, buf, len) < 0 || proto_frame_decoder_next(&d, &g) != 1)
        abort();
    if (g->id != f->id || g->kind != f->kind || g->status != f->status ||
        strcmp(g->method, f->method) != 0 || strcmp(g->error, f->error) != 0 ||
        g->payload.len != f->payload.len ||
        (f->payload.len && memcmp(g->payload.data, f->payload.data, f->payload.len) != 0))
        abort();
    if (proto_frame_decoder_pending(&d) != 0)
        abort();
    swarm__frame__free_unpacked(g, NULL);
    proto_frame_decoder_finish(&d);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t rng = data[0] * 2654435761u + 1;
    data++;
    size--;

    struct proto_frame_decoder d;
    proto_frame_decoder_init(&d, FUZZ_MAX_FRAME);
    size_t off = 0;
    int r = 0;
    while (off < size && r >= 0) {
        rng = rng * 1103515245u + 12345u;
        size_t chunk = 1 + (rng >> 16) % 64;
        if (chunk > size - off)
            chunk = size - off;
        if (proto_frame_decoder_feed(&d, data + off, chunk) < 0)
            break;
        off += chunk;
        for (;;) {
            Swarm__Frame *f = NULL;
            r = proto_frame_decoder_next(&d, &f);
            if (r <= 0)
                break;
            roundtrip(f);
            swarm__frame__free_unpacked(f, NULL);
        }
        if (r < 0 && r != -EMSGSIZE && r != -EBADMSG)
            abort();
    }
    if (r >= 0 && proto_frame_decoder_pending(&d) >= PROTO_FRAME_HEADER + FUZZ_MAX_FRAME)
        abort(); /* a whole frame was left undecoded */
    proto_frame_decoder_finish(&d);
    return 0;
}
