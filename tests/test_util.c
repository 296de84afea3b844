/* test_util.c — see test_util.h. */
#define _DEFAULT_SOURCE
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int test_run(const char *command, test_output *out)
{
    char wrapped[8192];
    snprintf(wrapped, sizeof wrapped, "( %s ) 2>&1", command);
    out->text[0] = '\0';
    FILE *fp = popen(wrapped, "r");
    if (!fp) return -1;
    size_t used = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        size_t room = sizeof out->text - 1 - used;
        if (n > room) n = room;
        memcpy(out->text + used, chunk, n);
        used += n;
    }
    out->text[used] = '\0';
    int status = pclose(fp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *test_tail(const char *text, size_t max)
{
    size_t n = strlen(text);
    return n > max ? text + n - max : text;
}

char *test_read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, fp) != (size_t)size) {
        free(data);
        data = NULL;
    }
    if (data) data[size] = '\0';
    fclose(fp);
    return data;
}
