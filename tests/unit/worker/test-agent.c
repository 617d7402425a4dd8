/* worker/ agent: the session and heartbeats against a fake dispatcher. */
#include "../manager/harness.h"
#include "common/cleanup.h"
#include "worker/agent.h"
#include "wt.h"

const struct CMUnitTest wt_agent_tests[] = {};
const size_t wt_agent_n = 0;
