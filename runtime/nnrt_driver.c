/* nnrt_driver.c — the generated driver program, generic over models: the table of commands,
 * the parser and the entry point.
 *
 * Every model's <name>_main.c is one line: main calls nnrt_driver_main(&<name>_model, argc, argv).
 * The commands live in one table, one file each (nnrt_driver_<command>.c); each declares its
 * options, and the parser, the usage lines and the help text are all derived from them, so a new
 * command is a new file and a new row. The driver's files are the only ones of the runtime that
 * print: they are the program.
 *
 * Exit codes (DESIGN.md): 0 success, 1 bad input (files, values), 2 usage or internal error.
 */
#include "nnrt_driver.h"

#include <string.h>

/* ---- Command table -------------------------------------------------------------------- */

static const command *const commands[] = {&cmd_init_command, &cmd_forward_command,
                                          &cmd_grad_command, &cmd_train_command,
                                          &cmd_bench_command};

static void print_synopsis(FILE *out, const command *c) {
    fprintf(out, "%s %s", prog, c->name);
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        fprintf(out, o->required ? " %s" : " [%s", o->flag);
        if (o->meta) fprintf(out, " %s", o->meta);
        if (!o->required) fputc(']', out);
    }
    fputc('\n', out);
}

/* Follows a usage error: the command's synopsis, or where to find the commands. */
static void print_usage_hint(const command *c) {
    if (c) {
        fprintf(stderr, "usage: ");
        print_synopsis(stderr, c);
    } else {
        fprintf(stderr, "Run '%s --help' for the commands and the model.\n", prog);
    }
}

static void print_model(const nnrt_model *m, FILE *out) {
    fprintf(out, "model %s: isa %s, precision %s\n", m->name, m->isa, precision_name(m));
    fprintf(out, "  input %d, output %d, seq_len %d, batch %d, output at %s, loss %s\n", m->input,
            m->output, m->seq_len, m->batch, m->output_last ? "last" : "all",
            loss_name(m->loss_kind));
    fprintf(out, "  %zu parameters in %d tensors\n", m->num_params, m->num_tensors);
    fprintf(out, "  recurrent layers:\n");
    for (int k = 0; k < m->num_layers; k++)
        fprintf(out, "    %d: %-9s %d -> %d\n", k, cell_name(m->layers[k].cell), m->layers[k].input,
                m->layers[k].hidden);
    if (m->num_heads == 0)
        fprintf(out, "  head: none\n");
    else
        fprintf(out, "  head:\n");
    for (int j = 0; j < m->num_heads; j++)
        fprintf(out, "    %d: dense %-7s %d -> %d\n", j, act_name(m->heads[j].act),
                m->heads[j].input, m->heads[j].output);
}

static void print_help(const nnrt_model *m) {
    printf("usage: %s <command> [options]\n\ncommands:\n", prog);
    for (int i = 0; i < COUNT(commands); i++) {
        printf("  ");
        print_synopsis(stdout, commands[i]);
        printf("      %s\n", commands[i]->summary);
    }
    printf("\n");
    print_model(m, stdout);
    printf("\nRun '%s <command> --help' for a command's options.\n", prog);
}

static void print_command_help(const nnrt_model *m, const command *c) {
    printf("usage: ");
    print_synopsis(stdout, c);
    printf("%s\n\n", c->summary);
    int width = 18; /* the option column: as wide as the widest "flag META" */
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        int len = (int)strlen(o->flag) + (o->meta ? 1 + (int)strlen(o->meta) : 0);
        if (len > width) width = len;
    }
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->flag, o->meta ? " " : "", o->meta ? o->meta : "");
        printf("  %-*s %s\n", width, left, o->help);
    }
    printf("  %-*s %s\n", width, "-h, --help", "show this help");
    if (c->explain) {
        printf("\n");
        c->explain(m, stdout);
    }
}

/* ---- Parsing ---------------------------------------------------------------------------- */

#define PARSED_HELP (-1) /* help was printed: exit 0 */

/* Fills vals from argv (the arguments after the command name). Returns 0, PARSED_HELP, or
 * EXIT_USAGE after printing the error. */
static int parse_options(const nnrt_model *m, const command *c, int argc, char **argv,
                         const char **vals) {
    for (int k = 0; k < c->nopts; k++) vals[k] = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_command_help(m, c);
            return PARSED_HELP;
        }
        int k = 0;
        while (k < c->nopts && strcmp(arg, c->opts[k].flag) != 0) k++;
        if (k == c->nopts) {
            if (arg[0] == '-')
                report("%s: unknown option '%s'", c->name, arg);
            else
                report("%s: unexpected argument '%s'", c->name, arg);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
        if (vals[k]) {
            report("%s: option %s given twice", c->name, arg);
            return EXIT_USAGE;
        }
        if (!c->opts[k].meta) {
            vals[k] = "";
            continue;
        }
        if (i + 1 == argc) {
            report("%s: option %s needs a value (%s)", c->name, arg, c->opts[k].meta);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
        vals[k] = argv[++i];
    }
    for (int k = 0; k < c->nopts; k++) {
        if (c->opts[k].required && !vals[k]) {
            report("%s: missing %s %s", c->name, c->opts[k].flag, c->opts[k].meta);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* ---- Entry point -------------------------------------------------------------------------- */

int nnrt_driver_main(const nnrt_model *m, int argc, char **argv) {
    prog = m->name;
    line_open = 0;
    if (m->abi_version != NNRT_ABI_VERSION) {
        report("model generated for runtime ABI %d, linked with ABI %d: regenerate it",
               m->abi_version, NNRT_ABI_VERSION);
        return EXIT_USAGE;
    }
    if ((m->dtype != NNRT_F32 && m->dtype != NNRT_F64) || m->seq_len < 1 || m->batch < 1 ||
        !m->pack || !m->reset || !m->forward) {
        report("malformed model descriptor (dtype %d, seq_len %d, batch %d%s)", (int)m->dtype,
               m->seq_len, m->batch,
               !m->pack || !m->reset || !m->forward ? ", entry points missing" : "");
        return EXIT_USAGE;
    }
    if (argc < 2) {
        report("missing command");
        print_usage_hint(NULL);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        print_help(m);
        return 0;
    }
    for (int i = 0; i < COUNT(commands); i++) {
        const command *c = commands[i];
        if (strcmp(name, c->name) != 0) continue;
        const char *vals[MAX_OPTIONS];
        int rc = parse_options(m, c, argc - 2, argv + 2, vals);
        if (rc == PARSED_HELP) return 0;
        if (rc != 0) return rc;
        return c->run(m, vals);
    }
    fprintf(stderr, "%s: error: unknown command '%s' (commands:", prog, name);
    for (int i = 0; i < COUNT(commands); i++)
        fprintf(stderr, "%s %s", i ? "," : "", commands[i]->name);
    fprintf(stderr, ")\n");
    print_usage_hint(NULL);
    return EXIT_USAGE;
}
