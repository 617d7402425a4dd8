/* swarmctl unlock-key: show or rotate the swarm's unlock key (autolock). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/swarmctl.h"
#include "common/cleanup.h"

static const char help_unlock_key[] =
    "Usage:  swarmctl unlock-key [OPTIONS]\n"
    "\n"
    "Show the unlock key of an autolocked swarm, or rotate it: every manager then seals\n"
    "its keys under the new key. A manager that was down during a rotation still opens\n"
    "with the previous key: keep it for a while.\n"
    "\n"
    "Options:\n"
    "  -h, --help     Print usage\n"
    "  -q, --quiet    Only display the key\n"
    "      --rotate   Rotate the unlock key\n";

int ctl_cmd_unlock_key(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"rotate", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false, rotate = false;
    int c, r;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
            case 'q':
                quiet = true;
                break;
            case 'r':
                rotate = true;
                break;
            case 'h':
                return ctl_print_help(help_unlock_key);
            default:
                return ctl_getopt_usage(c, argv, opts, "unlock-key");
        }
    }
    if (optind < argc)
        return cli_usage_error(PROG, "unlock-key", "\"swarmctl unlock-key\" accepts no arguments");
    r = ctl_connect(ctl);
    if (r != CLI_EXIT_OK)
        return r;
    Swarm__UnlockKeyRequest req = SWARM__UNLOCK_KEY_REQUEST__INIT;
    req.rotate = rotate;
    ProtobufCMessage *m = NULL;
    int status;
    char error[ERRMSG_SIZE];
    r = ctl_call(ctl, "Control.GetUnlockKey", &req.base, &swarm__unlock_key_response__descriptor,
                 &m, &status, error, sizeof(error));
    if (r != CALL_OK)
        return ctl_call_failure(r, error);
    Swarm__UnlockKeyResponse *resp = (Swarm__UnlockKeyResponse *)m;
    int code = CLI_EXIT_OK;
    if (!resp->unlock_key[0]) {
        fprintf(stderr, PROG ": swarmd returned an empty unlock key\n");
        code = CLI_EXIT_FAILURE;
    } else if (quiet) {
        printf("%s\n", resp->unlock_key);
    } else {
        if (rotate)
            printf("Successfully rotated manager unlock key.\n\n");
        printf(
            "To unlock a swarm manager after it restarts, run 'swarmd unlock' and provide "
            "this key:\n\n    %s\n\n"
            "Keep it in a password manager: without it a restarted manager cannot start.\n",
            resp->unlock_key);
    }
    sw_erase(resp->unlock_key, strlen(resp->unlock_key));
    protobuf_c_message_free_unpacked(m, NULL);
    return ctl_finish_output(code);
}
