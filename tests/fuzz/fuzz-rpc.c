/* Fuzz target: every request message the manager decodes (proto/swarm.proto), chosen by
 * the first input byte; what decodes must re-encode to bytes that decode to the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Index = first byte modulo the count; the corpus generator uses the same order. */
static const ProtobufCMessageDescriptor *const types[] = {
    &swarm__frame__descriptor,
    &swarm__get_node_request__descriptor,
    &swarm__get_join_token_request__descriptor,
    &swarm__issue_node_certificate_request__descriptor,
    &swarm__create_service_request__descriptor,
    &swarm__get_service_request__descriptor,
    &swarm__update_service_request__descriptor,
    &swarm__list_tasks_request__descriptor,
    &swarm__create_secret_request__descriptor,
    &swarm__get_secret_request__descriptor,
    &swarm__update_node_request__descriptor,
    &swarm__session_request__descriptor,
    &swarm__heartbeat_request__descriptor,
    &swarm__update_task_status_request__descriptor,
    &swarm__remove_node_request__descriptor,
    &swarm__update_cluster_request__descriptor,
    &swarm__renew_node_certificate_request__descriptor,
    &swarm__update_secret_request__descriptor,
    &swarm__raft_connect_request__descriptor,
    &swarm__raft_join_request__descriptor,
    &swarm__unlock_key_request__descriptor,
    &swarm__unlock_request__descriptor,
    &swarm__data_key__descriptor,
    &swarm__rotate_carequest__descriptor,
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* Pack m; the size announced beforehand must be the size written. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *ret_len)
{
    size_t want = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(want ? want : 1);
    if (!buf)
        abort();
    size_t got = protobuf_c_message_pack(m, buf);
    if (got != want)
        abort();
    *ret_len = got;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = types[data[0] % NTYPES];
    data++;
    size--;

    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
    if (!m)
        return 0;
    /* A decoded message is well formed: strings NUL-terminated, required parts present. */
    if (!protobuf_c_message_check(m))
        abort();

    size_t len1 = 0;
    uint8_t *buf1 = pack(m, &len1);
    /* proto_pack (what the manager's replies use) agrees with the raw packer. */
    uint8_t *pbuf = NULL;
    size_t plen = 0;
    if (proto_pack(m, &pbuf, &plen) < 0 || plen != len1 || (plen && memcmp(pbuf, buf1, plen) != 0))
        abort();
    free(pbuf);

    /* What the manager accepts (proto_strict: no unknown fields anywhere; it refuses the
     * rest) re-encodes to bytes that decode, and encode to the same bytes again. A message
     * with unknown fields may not: protobuf-c keeps a field 0 from an overlong tag and
     * writes it back as a tag it cannot read. */
    ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, len1, buf1);
    if (!m2 && !proto_strict(m)) {
        free(buf1);
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
    if (!m2)
        abort();
    size_t len2 = 0;
    uint8_t *buf2 = pack(m2, &len2);
    if (len2 != len1 || (len1 && memcmp(buf1, buf2, len1) != 0))
        abort();

    free(buf2);
    free(buf1);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
