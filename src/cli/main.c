#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"attention", ats_cmd_attention, "Run a model and capture every attention head"},
    {"rips", ats_cmd_rips, "Vietoris–Rips persistent homology of a distance matrix or points"},
    {"measure", ats_cmd_measure, "Entropy, KL and Jensen–Shannon of attention; head distances"},
    {"bottleneck", ats_cmd_bottleneck, "Exact bottleneck distance between persistence diagrams"},
    {"wasserstein", ats_cmd_wasserstein, "q-Wasserstein distance between persistence diagrams"},
    {"plot", ats_cmd_plot, "Figures: persistence diagram, barcode, heatmap (PNG, SVG, PDF)"},
    {"attend", ats_cmd_attend, "Attention heatmaps of one head or of every head"},
    {"graph", ats_cmd_graph, "A head's attention as a weighted graph of tokens"},
    {"divergence", ats_cmd_divergence, "Entropy, KL and Jensen–Shannon of a head, as figures"},
    {"topo", ats_cmd_topo, "Token topology of a head: JS distances, persistence, skeleton"},
    {"compare", ats_cmd_compare, "Bottleneck/Wasserstein between two texts' diagrams, per head"},
    {"report", ats_cmd_report, "One offline HTML page with a whole two-text analysis"},
    {"context", ats_cmd_context, "Context vectors of a word across texts, models and a corpus"},
    {"vision", ats_cmd_vision, "Token topology of a ViT's image patches; perturbations; frames"},
    {"equivariance", ats_cmd_equivariance,
     "Permutation equivariance of attention, and how positions break it"},
    {"syntax", ats_cmd_syntax, "Syntactic heads: attention against gold dependency trees"},
    {"heads", ats_cmd_heads, "Head topology over a corpus: head distances, persistence, MDS"},
    {"importance", ats_cmd_importance, "Head importance from gradients (one backward pass a text)"},
    {"tokenize", ats_cmd_tokenize, "A model's tokens of a text, with ids and offsets"},
    {"serve", ats_cmd_serve, "The interactive viewer in a browser (HTTP, 127.0.0.1)"},
};

/* The commands that load a model: they take --adapter DIR (ats_cli_adapter), the others refuse
 * it. A new command that loads models joins the list once it passes ats_cli_adapter() to its
 * ats_model_load_adapted / ats_session_open_adapted. */
static const char *const MODEL_COMMANDS[] = {
    "attention", "attend", "graph",        "divergence", "topo",  "compare", "report",
    "context",   "vision", "equivariance", "heads",      "serve", "syntax",  "importance"};

static int loads_models(const char *cmd) {
    for (size_t i = 0; i < sizeof MODEL_COMMANDS / sizeof MODEL_COMMANDS[0]; i++)
        if (!strcmp(cmd, MODEL_COMMANDS[i])) return 1;
    return 0;
}

static void print_usage(FILE *fp) {
    fprintf(fp, "usage: attnscope <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(fp, "  %-13s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(fp, "\n`attnscope <command> --help` describes a command. Every command that loads a "
                "model\ntakes --adapter DIR: a PEFT LoRA adapter merged into the model at load.\n");
    fprintf(fp, "Every command takes --max-memory SIZE (8G, 512M): large reads and work whose\n"
                "estimated memory exceeds the available memory are refused unless SIZE allows.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return ATS_EXIT_INPUT;
    }
    /* `attnscope help CMD` is `attnscope CMD --help`; `-h` right after a command is its --help
     * (only there: elsewhere "-h" may be an option's value, a text or a file name). */
    static char help_option[] = "--help";
    if (!strcmp(argv[1], "help") && argc >= 3) {
        argv[1] = argv[2];
        argv[2] = help_option;
        argc = 3;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return ATS_EXIT_OK;
    }
    if (argc >= 3 && !strcmp(argv[2], "-h")) argv[2] = help_option;
    if (ats_cli_kernel_check() != ATS_EXIT_OK) return ATS_EXIT_INPUT;
    ats_cli_remove_temporaries_on_signal();
    if (ats_cli_take_max_memory(&argc, argv) != ATS_EXIT_OK) return ATS_EXIT_INPUT;
    if (argc < 2) {
        print_usage(stderr);
        return ATS_EXIT_INPUT;
    }
    if (!strcmp(argv[1], "--version")) {
        ats_cli_print_version();
        return ATS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) {
            int n = argc - 1;
            if (ats_cli_adapter_take(argv[1], loads_models(argv[1]), &n, argv + 1))
                return ATS_EXIT_INPUT;
            return COMMANDS[i].run(n, argv + 1);
        }
    fprintf(stderr, "attnscope: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return ATS_EXIT_INPUT;
}
