/* torch_common.h — shared by the PyTorch conformance suites. */
#ifndef RNNC_TESTS_TORCH_COMMON_H
#define RNNC_TESTS_TORCH_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "nnrt.h"

/* Models whose name starts with this are checked against PyTorch. */
#define TORCH_PREFIX "torch_"
/* Debian's python, where python3-torch installs (a pyenv python3 may come first on PATH);
 * the environment variable RNNC_PYTHON overrides it. */
#define DEFAULT_PYTHON "/usr/bin/python3"

int is_torch_model(const nnrt_model *m);
/* Index in rnnc_test_models of the n-th torch_ model, -1 when there are fewer. */
int torch_model_index(int n);
int torch_model_count(void);
const char *python_path(void);
/* RNNC_REQUIRE_TORCH=1: a missing torch fails instead of skipping. */
int torch_required(void);
/* Appends s to buf (capacity size) in single quotes, safe for sh; append: as it is. */
void append_quoted(char *buf, size_t size, const char *s);
void append(char *buf, size_t size, const char *s);
/* Runs cmd through sh with stderr folded into stdout; keeps the output's last out_size - 1 bytes
 * in out. Returns the exit status (-1 when it could not run or died of a signal). */
int run_command(const char *cmd, char *out, size_t out_size);
/* The last non-empty line of text, copied to out. */
void last_line(const char *text, char *out, size_t size);

/* The JSON fields "layers": [...], "heads": [...] and "tensors": [... (the list left open, so the
 * caller closes it and adds its own fields) that the python scripts rebuild the model from. */
void write_architecture(FILE *f, const nnrt_model *m);

#endif
