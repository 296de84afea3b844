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

#include <getopt.h>
#include <string.h>

#ifndef RNNC_VERSION
#define RNNC_VERSION "unknown" /* the Makefile passes the version of rnnc */
#endif

/* ---- Command table -------------------------------------------------------------------- */

static const command *const commands[] = {&cmd_init_command,  &cmd_forward_command,
                                          &cmd_grad_command,  &cmd_eval_command,
                                          &cmd_train_command, &cmd_bench_command};

static void print_synopsis(FILE *out, const command *c) {
    fprintf(out, "%s %s", prog, c->name);
    for (int k = 0; k < c->nopts; k++) {
        const opt_spec *o = &c->opts[k];
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
    printf("\nRun '%s <command> --help' for a command's options ('--opt value' and '--opt=value'\n"
           "are the same), '%s --version' for the versions of rnnc and of the runtime.\n",
           prog, prog);
}

static void print_command_help(const nnrt_model *m, const command *c) {
    printf("usage: ");
    print_synopsis(stdout, c);
    printf("%s\n\n", c->summary);
    int width = 18; /* the option column: as wide as the widest "flag META" */
    for (int k = 0; k < c->nopts; k++) {
        const opt_spec *o = &c->opts[k];
        int len = (int)strlen(o->flag) + (o->meta ? 1 + (int)strlen(o->meta) : 0);
        if (len > width) width = len;
    }
    for (int k = 0; k < c->nopts; k++) {
        const opt_spec *o = &c->opts[k];
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
#define LONG_BASE 256    /* getopt_long's value for opts[k] when it has a long name: LONG_BASE + k */

/* Fills vals from argv (argv[0] is the command's name) with getopt_long: "--steps 5" and
 * "--steps=5" are the same, short options take their value as "-o Y" or "-oY". Long names must
 * be given in full (an abbreviation would change meaning when an option is added), an option
 * may be given once, and there are no operands. Returns 0, PARSED_HELP, or EXIT_USAGE after
 * printing the error. */
static int parse_options(const nnrt_model *m, const command *c, int argc, char **argv,
                         const char **vals) {
    struct option longs[MAX_OPTIONS + 2];
    char shorts[3 + 2 * MAX_OPTIONS + 2];
    int nlong = 0, nshort = 0;
    shorts[nshort++] = '+'; /* stop at the first operand: it is an error, not to be skipped */
    shorts[nshort++] = ':'; /* a missing value returns ':' */
    for (int k = 0; k < c->nopts; k++) {
        const opt_spec *o = &c->opts[k];
        vals[k] = NULL;
        if (o->flag[1] == '-') {
            longs[nlong++] = (struct option){o->flag + 2, o->meta ? required_argument : no_argument,
                                             NULL, LONG_BASE + k};
        } else {
            shorts[nshort++] = o->flag[1];
            if (o->meta) shorts[nshort++] = ':';
        }
    }
    shorts[nshort++] = 'h';
    shorts[nshort] = '\0';
    longs[nlong++] = (struct option){"help", no_argument, NULL, 'h'};
    longs[nlong] = (struct option){NULL, 0, NULL, 0};

    opterr = 0; /* the messages are ours */
    optind = 0; /* 0, not 1: glibc starts afresh, as the driver may run more than once */
    for (;;) {
        int at = optind > 0 ? optind : 1; /* the element a long option starts at */
        int index = -1;
        int ch = getopt_long(argc, argv, shorts, longs, &index);
        if (ch == -1) break;
        if (ch == 'h') {
            print_command_help(m, c);
            return PARSED_HELP;
        }
        int k = ch >= LONG_BASE ? ch - LONG_BASE : -1;
        if (ch == '?' || ch == ':') {
            int known = optopt >= LONG_BASE ? optopt - LONG_BASE : -1;
            for (int j = 0; j < c->nopts && known < 0 && optopt > 0; j++)
                if (c->opts[j].flag[1] == optopt) known = j;
            if (optopt == 'h')
                report("%s: option --help takes no value", c->name);
            else if (ch == ':')
                report("%s: option %s needs a value (%s)", c->name, c->opts[known].flag,
                       c->opts[known].meta);
            else if (known >= 0)
                report("%s: option %s takes no value", c->name, c->opts[known].flag);
            else if (optopt > 0)
                report("%s: unknown option '-%c'", c->name, optopt);
            else
                report("%s: unknown option '%s'", c->name, argv[optind - 1]);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
        if (k < 0)
            for (int j = 0; j < c->nopts; j++)
                if (c->opts[j].flag[1] == ch) k = j;
        const opt_spec *o = &c->opts[k];
        if (index >= 0) { /* getopt_long accepts abbreviations: only the full name is ours */
            size_t len = strlen(o->flag);
            if (strncmp(argv[at], o->flag, len) != 0 ||
                (argv[at][len] != '\0' && argv[at][len] != '=')) {
                size_t shown = strcspn(argv[at], "=");
                report("%s: unknown option '%.*s' (did you mean %s?)", c->name, (int)shown,
                       argv[at], o->flag);
                print_usage_hint(c);
                return EXIT_USAGE;
            }
        } else if (o->meta && optarg[0] == '=') {
            report("%s: option %s: value '%s' starts with '=': write %s %s", c->name, o->flag,
                   optarg, o->flag, optarg + 1);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
        if (vals[k]) {
            report("%s: option %s given twice", c->name, o->flag);
            return EXIT_USAGE;
        }
        vals[k] = o->meta ? optarg : "";
    }
    if (optind < argc) {
        report("%s: unexpected argument '%s'", c->name, argv[optind]);
        print_usage_hint(c);
        return EXIT_USAGE;
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
    if (strcmp(name, "--version") == 0) {
        printf("%s (rnnc %s, runtime ABI %d; isa %s, precision %s)\n", prog, RNNC_VERSION,
               NNRT_ABI_VERSION, m->isa ? m->isa : "unknown", precision_name(m));
        return 0;
    }
    for (int i = 0; i < COUNT(commands); i++) {
        const command *c = commands[i];
        if (strcmp(name, c->name) != 0) continue;
        const char *vals[MAX_OPTIONS];
        int rc = parse_options(m, c, argc - 1, argv + 1, vals);
        if (rc == PARSED_HELP) return 0;
        if (rc != 0) return rc;
        return c->run(m, vals);
    }
    char list[256] = "";
    for (int i = 0; i < COUNT(commands); i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 commands[i]->name);
    report("unknown command '%s' (commands: %s)", name, list);
    print_usage_hint(NULL);
    return EXIT_USAGE;
}
