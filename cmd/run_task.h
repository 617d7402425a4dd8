/* swarmd run-task. */
#pragma once

/* argv[0] is "run-task"; returns the process exit status. */
int swarmd_run_task(int argc, char **argv);
