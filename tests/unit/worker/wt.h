/* The test groups of test-worker, run by main.c. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

extern const struct CMUnitTest wt_join_tests[];
extern const size_t wt_join_n;
extern const struct CMUnitTest wt_agent_tests[];
extern const size_t wt_agent_n;
extern const struct CMUnitTest wt_exec_tests[];
extern const size_t wt_exec_n;
