/* test-manager: runs every manager/ test group. */
#include <signal.h>

#include "common/log.h"
#include "tests.h"

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sw_log_set_level(SW_LOG_ERROR);
    int failed = 0;
    failed +=
        _cmocka_run_group_tests("manager-control", mt_control_tests, mt_control_n, NULL, NULL);
    failed += _cmocka_run_group_tests("manager-state", mt_state_tests, mt_state_n, NULL, NULL);
    failed += _cmocka_run_group_tests("manager-ca", mt_ca_tests, mt_ca_n, NULL, NULL);
    failed += _cmocka_run_group_tests("manager-lifecycle", mt_lifecycle_tests, mt_lifecycle_n, NULL,
                                      NULL);
    failed += _cmocka_run_group_tests("manager-orchestrator", mt_orchestrator_tests,
                                      mt_orchestrator_n, NULL, NULL);
    failed += _cmocka_run_group_tests("manager-assign", mt_assign_tests, mt_assign_n, NULL, NULL);
    failed += _cmocka_run_group_tests("manager-update", mt_update_tests, mt_update_n, NULL, NULL);
    failed +=
        _cmocka_run_group_tests("manager-raftnet", mt_raftnet_tests, mt_raftnet_n, NULL, NULL);
    return failed ? 1 : 0;
}
