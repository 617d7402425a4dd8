/* The test groups of test-manager, run by main.c. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

extern const struct CMUnitTest mt_control_tests[];
extern const size_t mt_control_n;
extern const struct CMUnitTest mt_state_tests[];
extern const size_t mt_state_n;
extern const struct CMUnitTest mt_ca_tests[];
extern const size_t mt_ca_n;
extern const struct CMUnitTest mt_lifecycle_tests[];
extern const size_t mt_lifecycle_n;
extern const struct CMUnitTest mt_orchestrator_tests[];
extern const size_t mt_orchestrator_n;
extern const struct CMUnitTest mt_assign_tests[];
extern const size_t mt_assign_n;
extern const struct CMUnitTest mt_update_tests[];
extern const size_t mt_update_n;
extern const struct CMUnitTest mt_raftnet_tests[];
extern const size_t mt_raftnet_n;
