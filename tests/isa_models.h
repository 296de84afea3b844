/* isa_models.h — the pairs the ISA suite (tests/test_isa.c) compares.
 *
 * Each spec under tests/specs/isa is generated once for the scalar backend (its own name, the
 * reference) and once per SIMD backend of the build as <name>_<isa>. The definitions live in a
 * registry that tests/gen_isa_registry.sh writes for the build at hand: natively the Makefile
 * lists sse4, avx2 and avx512 (out/tests/models/isa/registry.c); scripts/test_neon.sh lists
 * neon for its AArch64 cross build. The same tests/test_isa.c runs in both.
 */
#ifndef RNNC_TESTS_ISA_MODELS_H
#define RNNC_TESTS_ISA_MODELS_H

#include "nnrt.h"

typedef struct rnnc_isa_pair {
    const nnrt_model *scalar;  /* the spec generated with --isa scalar */
    const nnrt_model *variant; /* the same spec generated with --isa <isa> --name <name>_<isa> */
    const char *isa;           /* "sse4", "avx2", "avx512", "neon" */
} rnnc_isa_pair;

/* Sorted by spec name, then in the order of the build's ISA list. */
extern const rnnc_isa_pair rnnc_isa_pairs[];
extern const int rnnc_isa_pair_count;

/* Whether this CPU can run code built for isa (RNNC_ISA_SKIP="avx512 ..." pretends it cannot). */
int rnnc_isa_runs_here(const char *isa);

#endif /* RNNC_TESTS_ISA_MODELS_H */
