/* swarmctl ca: the swarm's root CA — its certificate (PEM), digest and expiry. */
#include <stdio.h>
#include <string.h>

#include "cmd/swarmctl.h"
#include "common/cleanup.h"

static const char help_ca[] =
    "Usage:  swarmctl ca [OPTIONS]\n"
    "\n"
    "Display the swarm's root CA certificate (PEM): what a node's trust is anchored to,\n"
    "and what the digest in join tokens is computed from\n"
    "\n"
    "Options:\n"
    "      --format string   Output format: pretty (default: the PEM) or json (PEM, digest,\n"
    "                        expiry)\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display the digest (as in join tokens' second part)\n";

int ctl_cmd_ca(struct ctl *ctl, int argc, char **argv)
{
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    const struct ctl_query q = {
        .cmd = "ca",
        .help = help_ca,
        .allow_pretty = true,
        .format = FORMAT_PRETTY,
        .method = "Control.GetCluster",
        .req = &req.base,
        .desc = &swarm__get_cluster_response__descriptor,
    };
    bool quiet;
    enum ctl_format format;
    ProtobufCMessage *m;
    int r = ctl_query(ctl, &q, argc, argv, &quiet, &format, &m);
    if (r != CLI_EXIT_OK || !m)
        return r;
    Swarm__GetClusterResponse *resp = (Swarm__GetClusterResponse *)m;
    const Swarm__RootCA *ca = resp->cluster ? resp->cluster->root_ca : NULL;
    int code = CLI_EXIT_OK;
    if (resp->cluster && resp->cluster->root_ca && resp->cluster->root_ca->ca_key_pem.data)
        sw_erase(resp->cluster->root_ca->ca_key_pem.data, resp->cluster->root_ca->ca_key_pem.len);
    if (!ca || !ca->ca_cert_pem[0]) {
        fprintf(stderr, PROG ": swarmd returned no root CA; is this node part of a swarm?\n");
        code = CLI_EXIT_FAILURE;
    } else if (quiet) {
        printf("%s\n", ca->digest);
    } else if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_object(&j);
        cli_json_kv_string(&j, "digest", ca->digest);
        ctl_json_time(&j, "not_after", resp->ca_cert_not_after);
        cli_json_kv_string(&j, "cert_pem", ca->ca_cert_pem);
        cli_json_end_object(&j);
        if (cli_json_finish(&j) < 0)
            code = CLI_EXIT_FAILURE;
    } else {
        size_t n = strlen(ca->ca_cert_pem);
        fputs(ca->ca_cert_pem, stdout);
        if (n && ca->ca_cert_pem[n - 1] != '\n')
            fputc('\n', stdout);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(code);
}
