/* test_models.h — every model generated from tests/specs/forward, torch and grad.
 *
 * The definitions live in out/tests/models/registry.c, which the Makefile writes with
 * tests/gen_registry.sh from the list of test specs; each model is generated into
 * out/tests/models/<name>/ by `rnnc generate` and compiled into the test runner.
 */
#ifndef RNNC_TESTS_TEST_MODELS_H
#define RNNC_TESTS_TEST_MODELS_H

#include "nnrt.h"

/* The descriptors of all test models, sorted by name. */
extern const nnrt_model *const rnnc_test_models[];
extern const int rnnc_test_model_count;

#endif /* RNNC_TESTS_TEST_MODELS_H */
