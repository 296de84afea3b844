/* test_util.h — small helpers shared by the test suites. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>

typedef struct test_output {
    char text[32768]; /* stdout and stderr of the command, truncated, NUL-terminated */
} test_output;

/* Runs command through sh with stderr folded into stdout; returns its exit status (-1 when it
 * could not run or was killed). */
int test_run(const char *command, test_output *out);
/* The last at most max bytes of text (for messages: Check limits their length). */
const char *test_tail(const char *text, size_t max);
/* The whole file as a NUL-terminated string (free it), or NULL. */
char *test_read_file(const char *path);

#endif
