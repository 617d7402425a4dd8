/* proto/frame: encode/decode round trips, partial input, size cap, garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "proto/frame.h"

static void test_roundtrip_bytewise(void **state)
{
    struct proto_frame f = {.id = 42,
                            .kind = SWARM__FRAME_KIND__FRAME_REQUEST,
                            .method = "Control.ListNodes",
                            .payload = (const uint8_t *)"abc",
                            .payload_len = 3};
    uint8_t *buf;
    size_t len;
    struct proto_frame_decoder d;
    Swarm__Frame *out = NULL;

    assert_int_equal(proto_frame_encode(&f, PROTO_FRAME_MAX_DEFAULT, &buf, &len), 0);
    proto_frame_decoder_init(&d, 0);
    /* feed one byte at a time: no frame until the last byte */
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(proto_frame_decoder_next(&d, &out), 0);
        assert_int_equal(proto_frame_decoder_feed(&d, buf + i, 1), 0);
    }
    assert_int_equal(proto_frame_decoder_next(&d, &out), 1);
    assert_int_equal(out->id, 42);
    assert_string_equal(out->method, "Control.ListNodes");
    assert_int_equal(out->payload.len, 3);
    assert_memory_equal(out->payload.data, "abc", 3);
    assert_int_equal(proto_frame_decoder_pending(&d), 0);
    swarm__frame__free_unpacked(out, NULL);
    proto_frame_decoder_finish(&d);
    free(buf);
}

static void test_two_frames_one_read(void **state)
{
    struct proto_frame a = {
        .id = 1, .kind = SWARM__FRAME_KIND__FRAME_RESPONSE, .status = -2, .error = "no such node"};
    struct proto_frame b = {.id = 2, .kind = SWARM__FRAME_KIND__FRAME_STREAM_MSG};
    uint8_t *ba, *bb;
    size_t la, lb;
    struct proto_frame_decoder d;
    Swarm__Frame *out;

    assert_int_equal(proto_frame_encode(&a, PROTO_FRAME_MAX_DEFAULT, &ba, &la), 0);
    assert_int_equal(proto_frame_encode(&b, PROTO_FRAME_MAX_DEFAULT, &bb, &lb), 0);
    proto_frame_decoder_init(&d, 0);
    assert_int_equal(proto_frame_decoder_feed(&d, ba, la), 0);
    assert_int_equal(proto_frame_decoder_feed(&d, bb, lb - 1), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), 1);
    assert_int_equal(out->status, -2);
    assert_string_equal(out->error, "no such node");
    swarm__frame__free_unpacked(out, NULL);
    assert_int_equal(proto_frame_decoder_next(&d, &out), 0);
    /* truncated frame is visible as pending bytes */
    assert_true(proto_frame_decoder_pending(&d) > 0);
    assert_int_equal(proto_frame_decoder_feed(&d, bb + lb - 1, 1), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), 1);
    assert_int_equal(out->id, 2);
    swarm__frame__free_unpacked(out, NULL);
    proto_frame_decoder_finish(&d);
    free(ba);
    free(bb);
}

static void test_too_large(void **state)
{
    struct proto_frame_decoder d;
    Swarm__Frame *out;
    const uint8_t hdr[4] = {0x01, 0x00, 0x00, 0x01}; /* 16 MiB + 1 */
    proto_frame_decoder_init(&d, 0);
    assert_int_equal(proto_frame_decoder_feed(&d, hdr, 4), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), -EMSGSIZE);
    proto_frame_decoder_finish(&d);

    uint8_t big[200];
    memset(big, 'x', sizeof(big));
    struct proto_frame f = {.payload = big, .payload_len = sizeof(big)};
    uint8_t *buf;
    size_t len;
    assert_int_equal(proto_frame_encode(&f, 100, &buf, &len), -EMSGSIZE);
}

static void test_garbage(void **state)
{
    struct proto_frame_decoder d;
    Swarm__Frame *out;
    /* length 3, then bytes that are not a valid protobuf (field 0 is invalid) */
    const uint8_t bad[] = {0, 0, 0, 3, 0x00, 0xff, 0xff};
    proto_frame_decoder_init(&d, 0);
    assert_int_equal(proto_frame_decoder_feed(&d, bad, sizeof(bad)), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), -EBADMSG);
    proto_frame_decoder_finish(&d);

    /* an unknown frame kind */
    const uint8_t badkind[] = {0, 0, 0, 2, 0x10, 0x09};
    proto_frame_decoder_init(&d, 0);
    assert_int_equal(proto_frame_decoder_feed(&d, badkind, sizeof(badkind)), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), -EBADMSG);
    proto_frame_decoder_finish(&d);
}

/* Many small frames buffered together (one big read, or a peer streaming tiny CANCEL
 * frames) decode in linear time: taking a frame must not move the rest of the buffer. */
static void test_many_small_frames_linear(void **state)
{
    const size_t n = 1024 * 1024; /* empty frames: 4-byte header, 0-byte body */
    uint8_t *buf = calloc(n, PROTO_FRAME_HEADER);
    assert_non_null(buf);
    struct proto_frame_decoder d;
    proto_frame_decoder_init(&d, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(proto_frame_decoder_feed(&d, buf, n * PROTO_FRAME_HEADER), 0);
    size_t got = 0;
    Swarm__Frame *out;
    int r;
    while ((r = proto_frame_decoder_next(&d, &out)) == 1) {
        swarm__frame__free_unpacked(out, NULL);
        got++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(r, 0);
    assert_int_equal(got, n);
    assert_int_equal(proto_frame_decoder_pending(&d), 0);
    /* a frame after the drained ones still decodes (the buffer is reused) */
    struct proto_frame f = {.id = 7, .kind = SWARM__FRAME_KIND__FRAME_CANCEL};
    uint8_t *one;
    size_t one_len;
    assert_int_equal(proto_frame_encode(&f, PROTO_FRAME_MAX_DEFAULT, &one, &one_len), 0);
    assert_int_equal(proto_frame_decoder_feed(&d, one, 2), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), 0);
    assert_int_equal(proto_frame_decoder_feed(&d, one + 2, one_len - 2), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &out), 1);
    assert_int_equal(out->id, 7);
    swarm__frame__free_unpacked(out, NULL);
    free(one);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* linear: well under a second even with sanitizers; quadratic: tens of seconds */
    assert_true(secs < 5.0);
    proto_frame_decoder_finish(&d);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bytewise),
        cmocka_unit_test(test_two_frames_one_read),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_many_small_frames_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
