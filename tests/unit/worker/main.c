/* test-worker: runs every worker/ test group. */
#include <signal.h>

#include "common/log.h"
#include "wt.h"

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sw_log_set_level(SW_LOG_ERROR);
    int failed = 0;
    failed += _cmocka_run_group_tests("worker-join", wt_join_tests, wt_join_n, NULL, NULL);
    failed += _cmocka_run_group_tests("worker-agent", wt_agent_tests, wt_agent_n, NULL, NULL);
    failed += _cmocka_run_group_tests("worker-exec", wt_exec_tests, wt_exec_n, NULL, NULL);
    return failed ? 1 : 0;
}
