/* torch_common.c — what the PyTorch conformance suites (test_torch.c, test_torch_grad.c) share:
 * finding the torch_ test models, Debian's python, and running a script. See torch_common.h. */
#define _XOPEN_SOURCE 700 /* popen */
#include "torch_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "reference.h"
#include "test_models.h"

int is_torch_model(const nnrt_model *m)
{
    return strncmp(m->name, TORCH_PREFIX, strlen(TORCH_PREFIX)) == 0;
}

/* Index in rnnc_test_models of the n-th torch_ model, -1 when there are fewer. */
int torch_model_index(int n)
{
    for (int i = 0; i < rnnc_test_model_count; i++)
        if (is_torch_model(rnnc_test_models[i]) && n-- == 0)
            return i;
    return -1;
}

int torch_model_count(void)
{
    int n = 0;
    while (torch_model_index(n) >= 0) n++;
    return n;
}

const char *python_path(void)
{
    const char *p = getenv("RNNC_PYTHON");
    return p && *p ? p : DEFAULT_PYTHON;
}

int torch_required(void)
{
    const char *r = getenv("RNNC_REQUIRE_TORCH");
    return r && strcmp(r, "1") == 0;
}

/* Appends s to buf (capacity size) in single quotes, safe for sh. */
void append_quoted(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);
    if (n + 1 < size) buf[n++] = '\'';
    for (; *s && n + 5 < size; s++) {
        if (*s == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *s;
        }
    }
    if (n + 1 < size) buf[n++] = '\'';
    buf[n < size ? n : size - 1] = '\0';
}

void append(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, "%s", s);
}

/* Runs cmd through sh with stderr folded into stdout; keeps the output's last out_size - 1 bytes
 * in out. Returns the exit status (-1 when it could not run or died of a signal). */
int run_command(const char *cmd, char *out, size_t out_size)
{
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(out, out_size, "popen: %s", strerror(errno));
        return -1;
    }
    size_t len = 0;
    int ch;
    while ((ch = fgetc(p)) != EOF) {
        if (len == out_size - 1) { /* full: drop the older half */
            size_t drop = out_size / 2;
            memmove(out, out + drop, len - drop);
            len -= drop;
        }
        out[len++] = (char)ch;
    }
    out[len] = '\0';
    int st = pclose(p);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

/* The last non-empty line of text, copied to out. */
void last_line(const char *text, char *out, size_t size)
{
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    snprintf(out, size, "%.*s", (int)(end - start), start);
}

void write_architecture(FILE *f, const nnrt_model *m)
{
    fprintf(f, " \"layers\": [");
    for (int k = 0; k < m->num_layers; k++)
        fprintf(f, "%s{\"cell\": \"%s\", \"input\": %d, \"hidden\": %d}", k ? ", " : "",
                ref_cell_name(m->layers[k].cell), m->layers[k].input, m->layers[k].hidden);
    fprintf(f, "],\n \"heads\": [");
    for (int j = 0; j < m->num_heads; j++)
        fprintf(f, "%s{\"act\": \"%s\", \"input\": %d, \"output\": %d}", j ? ", " : "",
                ref_act_name(m->heads[j].act), m->heads[j].input, m->heads[j].output);
    fprintf(f, "],\n \"tensors\": [");
    for (int t = 0; t < m->num_tensors; t++) {
        const nnrt_param_desc *d = &m->tensors[t];
        fprintf(f, "%s\n  {\"name\": \"%s\", \"shape\": [%lld", t ? "," : "", d->name,
                (long long)d->shape[0]);
        if (d->ndim == 2) fprintf(f, ", %lld", (long long)d->shape[1]);
        fprintf(f, "]}");
    }
}
