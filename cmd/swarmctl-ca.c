/* swarmctl ca: the swarm's root CA — its certificate (PEM), digest and expiry. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/swtime.h"

#include "cmd/swarmctl.h"
#include "common/cleanup.h"

static const char help_ca[] =
    "Usage:  swarmctl ca [OPTIONS]\n"
    "        swarmctl ca --rotate [--cert-expiry DURATION] [-d]\n"
    "        swarmctl ca --force-rotate\n"
    "\n"
    "Display the swarm's root CA certificate (PEM): what a node's trust is anchored to,\n"
    "and what the digest in join tokens is computed from. With --rotate: a new root,\n"
    "cross-signed by the current one; every node renews into it, then the old root is\n"
    "trusted no more, its key is destroyed and both join tokens change. A node down during\n"
    "the whole rotation joins again with a new token.\n"
    "\n"
    "Options:\n"
    "      --rotate          Rotate the root CA (waits until every node moved, unless -d)\n"
    "      --force-rotate    Every node renews its certificate now (same root)\n"
    "      --cert-expiry D   With --rotate: validity of the node certificates from now on\n"
    "      --ca-cert FILE    With --rotate and --ca-key: rotate to this root (PEM, ECDSA P-256)\n"
    "      --ca-key FILE     …and its key (PEM); by default a new root is made\n"
    "      --external-ca protocol=cfssl,url=URL\n"
    "                        With --rotate and --ca-cert (the signer's root, no key): from\n"
    "                        now on a cfssl signer issues the certificates\n"
    "  -d, --detach          With --rotate: return once the rotation has started\n"
    "      --format string   Output format: pretty (default: the PEM) or json (PEM, digest,\n"
    "                        expiry)\n"
    "  -h, --help            Print usage\n"
    "  -q, --quiet           Only display the digest (as in join tokens' second part)\n";

static int get_cluster(struct ctl *ctl, Swarm__GetClusterResponse **ret)
{
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    int r = ctl_call(ctl, "Control.GetCluster", &req.base, &swarm__get_cluster_response__descriptor,
                     &m, &status, error, sizeof(error));
    if (r != CALL_OK)
        return ctl_call_failure(r, error);
    *ret = (Swarm__GetClusterResponse *)m;
    return CLI_EXIT_OK;
}

static int rotate(struct ctl *ctl, int argc, char **argv)
{
    enum { OPT_ROTATE = 0x100, OPT_EXPIRY, OPT_CA_CERT, OPT_CA_KEY, OPT_EXTERNAL };
    static const struct option opts[] = {
        {"rotate", no_argument, NULL, OPT_ROTATE},
        {"force-rotate", no_argument, NULL, 'f'},
        {"ca-cert", required_argument, NULL, OPT_CA_CERT},
        {"ca-key", required_argument, NULL, OPT_CA_KEY},
        {"external-ca", required_argument, NULL, OPT_EXTERNAL},
        {"cert-expiry", required_argument, NULL, OPT_EXPIRY},
        {"detach", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    Swarm__RotateCARequest req = SWARM__ROTATE_CAREQUEST__INIT;
    bool detach = false;
    const char *cert_file = NULL, *key_file = NULL, *external = NULL;
    _cleanup_free_ char *url = NULL;
    _cleanup_free_ char *cert = NULL, *key = NULL;
    size_t key_len = 0;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":dh", opts, NULL)) != -1) {
        switch (c) {
            case OPT_ROTATE:
                break;
            case OPT_EXPIRY:
                if (sw_duration_parse(optarg, &req.cert_expiry_ns) < 0 ||
                    req.cert_expiry_ns < 3600 * SW_NSEC_PER_SEC)
                    return cli_usage_error(PROG, "ca",
                                           "invalid --cert-expiry \"%s\": a duration of at "
                                           "least 1h",
                                           optarg);
                req.set_cert_expiry = true;
                break;
            case 'd':
                detach = true;
                break;
            case 'f':
                req.force_renew = true;
                break;
            case OPT_CA_CERT:
                cert_file = optarg;
                break;
            case OPT_CA_KEY:
                key_file = optarg;
                break;
            case OPT_EXTERNAL:
                external = optarg;
                break;
            case 'h':
                return ctl_print_help(help_ca);
            default:
                return ctl_getopt_usage(c, argv, opts, "ca");
        }
    }
    if (optind < argc)
        return cli_usage_error(PROG, "ca", "\"swarmctl ca\" accepts no arguments");
    if (external) {
        const char *u = strstr(external, "url=");
        if (strncmp(external, "protocol=cfssl,", 15) != 0 || !u || !u[4] || strchr(u, ','))
            return cli_usage_error(
                PROG, "ca", "invalid --external-ca \"%s\": protocol=cfssl,url=URL", external);
        if (!cert_file || key_file)
            return cli_usage_error(PROG, "ca",
                                   "--external-ca takes the signer's root with --ca-cert, no key");
        if (!(url = strdup(u + 4)))
            return CLI_EXIT_FAILURE;
        req.external_ca_url = url;
    } else if (!cert_file != !key_file)
        return cli_usage_error(PROG, "ca", "--ca-cert and --ca-key go together");
    if (cert_file && (sw_read_file(cert_file, 1 << 20, &cert, NULL) < 0 ||
                      (key_file && sw_read_file(key_file, 1 << 20, &key, &key_len) < 0))) {
        fprintf(stderr, PROG ": cannot read %s%s%s\n", cert_file, key_file ? " or " : "",
                key_file ? key_file : "");
        return CLI_EXIT_FAILURE;
    }
    if (cert) {
        req.ca_cert_pem = cert;
        req.ca_key_pem.data = (uint8_t *)key;
        req.ca_key_pem.len = key_len;
    }
    int r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, "Control.RotateCA", &req.base, &swarm__get_cluster_response__descriptor, &m,
                 &status, error, sizeof(error));
    if (key)
        sw_erase(key, key_len);
    if (r != CALL_OK)
        return ctl_call_failure(r, error);
    protobuf_c_message_free_unpacked(m, NULL);
    if (req.force_renew) {
        fprintf(stderr, "Every node renews its certificate now.\n");
        return ctl_finish_output(CLI_EXIT_OK);
    }
    fprintf(stderr, "Root CA rotation started: every node renews into the new root.\n");
    if (detach)
        return ctl_finish_output(CLI_EXIT_OK);
    unsigned last_done = ~0u, last_total = ~0u;
    for (;;) {
        Swarm__GetClusterResponse *resp = NULL;
        if ((r = get_cluster(ctl, &resp)) != CLI_EXIT_OK)
            return r;
        bool rotating = resp->root_rotation;
        if (rotating &&
            (resp->rotation_nodes_done != last_done || resp->rotation_nodes_total != last_total)) {
            last_done = resp->rotation_nodes_done;
            last_total = resp->rotation_nodes_total;
            fprintf(stderr, "rotating: %u of %u nodes hold a certificate of the new root\n",
                    last_done, last_total);
        }
        if (!rotating && resp->cluster && resp->cluster->root_ca) {
            fprintf(stderr,
                    "Root CA rotation complete: the old root is trusted no more and "
                    "the join tokens changed.\n");
            fputs(resp->cluster->root_ca->ca_cert_pem, stdout);
        }
        if (resp->cluster && resp->cluster->root_ca && resp->cluster->root_ca->ca_key_pem.data)
            sw_erase(resp->cluster->root_ca->ca_key_pem.data,
                     resp->cluster->root_ca->ca_key_pem.len);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (!rotating)
            break;
        usleep(250 * 1000);
    }
    return ctl_finish_output(CLI_EXIT_OK);
}

int ctl_cmd_ca(struct ctl *ctl, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--rotate") == 0 || strcmp(argv[i], "--force-rotate") == 0)
            return rotate(ctl, argc, argv);
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
        if (resp->root_rotation)
            fprintf(stderr, "(a root rotation is under way: %u of %u nodes moved)\n",
                    resp->rotation_nodes_done, resp->rotation_nodes_total);
    } else if (format == FORMAT_JSON) {
        struct cli_json j;
        cli_json_init(&j, stdout, true);
        cli_json_begin_object(&j);
        cli_json_kv_string(&j, "digest", ca->digest);
        ctl_json_time(&j, "not_after", resp->ca_cert_not_after);
        if (resp->root_rotation) {
            cli_json_key(&j, "rotation");
            cli_json_begin_object(&j);
            cli_json_kv_uint(&j, "nodes_done", resp->rotation_nodes_done);
            cli_json_kv_uint(&j, "nodes_total", resp->rotation_nodes_total);
            cli_json_end_object(&j);
        }
        cli_json_kv_string(&j, "cert_pem", ca->ca_cert_pem);
        cli_json_end_object(&j);
        if (cli_json_finish(&j) < 0)
            code = CLI_EXIT_FAILURE;
    } else {
        if (resp->root_rotation)
            fprintf(stderr, "(a root rotation is under way: %u of %u nodes moved)\n",
                    resp->rotation_nodes_done, resp->rotation_nodes_total);
        size_t n = strlen(ca->ca_cert_pem);
        fputs(ca->ca_cert_pem, stdout);
        if (n && ca->ca_cert_pem[n - 1] != '\n')
            fputc('\n', stdout);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(code);
}
