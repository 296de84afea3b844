/* run_tests.c — the single Check runner: one suite per module. CK_FORK=no runs in-process,
 * which is what you want under gdb. Exit status is the number of failures (capped). */
#include <check.h>
#include <stdlib.h>

Suite *spec_suite(void);
Suite *runtime_suite(void);
Suite *safetensors_suite(void);
Suite *npy_suite(void);
Suite *model_io_suite(void);
Suite *driver_suite(void);
Suite *driver_train_suite(void);
Suite *driver_bench_suite(void);
Suite *driver_files_suite(void);
Suite *forward_suite(void);
Suite *torch_suite(void);
Suite *gradcheck_suite(void);
Suite *optim_suite(void);
Suite *torch_grad_suite(void);
Suite *examples_suite(void);
Suite *isa_suite(void);
Suite *threads_suite(void);
Suite *tune_suite(void);
Suite *hostile_suite(void);

int main(void)
{
    SRunner *runner = srunner_create(spec_suite());
    srunner_add_suite(runner, runtime_suite());
    srunner_add_suite(runner, safetensors_suite());
    srunner_add_suite(runner, npy_suite());
    srunner_add_suite(runner, model_io_suite());
    srunner_add_suite(runner, driver_suite());
    srunner_add_suite(runner, driver_train_suite());
    srunner_add_suite(runner, driver_bench_suite());
    srunner_add_suite(runner, driver_files_suite());
    srunner_add_suite(runner, forward_suite());
    srunner_add_suite(runner, torch_suite());
    srunner_add_suite(runner, gradcheck_suite());
    srunner_add_suite(runner, optim_suite());
    srunner_add_suite(runner, torch_grad_suite());
    srunner_add_suite(runner, examples_suite());
    srunner_add_suite(runner, isa_suite());
    srunner_add_suite(runner, threads_suite());
    srunner_add_suite(runner, tune_suite());
    srunner_add_suite(runner, hostile_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
