/* proto/frame: encode/decode round trips, partial input, size cap, garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/frame.h"

static void test_roundtrip_bytewise(void **state)
{
    struct proto_frame f = {.id = 42, .kind = SWARM__FRAME_KIND__FRAME_REQUEST,
                            .method = "Control.ListNodes", .payload = (const uint8_t *)"abc",
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
    struct proto_frame a = {.id = 1, .kind = SWARM__FRAME_KIND__FRAME_RESPONSE, .status = -2,
                            .error = "no such node"};
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bytewise),
        cmocka_unit_test(test_two_frames_one_read),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
