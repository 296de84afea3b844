/* run_isa_tests.c — a Check runner of the suites on the ISA models alone: isa (tests/test_isa.c)
 * and threads (tests/test_threads.c). `make test-isa` natively, `make tsan` under
 * ThreadSanitizer, and the AArch64 cross build of scripts/test_neon.sh under qemu-aarch64. The
 * whole suite, these included, runs from tests/run_tests.c. Exit status 0 when every test passed. */
#include <check.h>
#include <stdlib.h>

Suite *isa_suite(void);
Suite *threads_suite(void);

int main(void)
{
    SRunner *runner = srunner_create(isa_suite());
    srunner_add_suite(runner, threads_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
