/* recsys: the command-line front end of librecsys. */
#include "cli.h"
#include "commands.h"

#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} COMMANDS[] = {
    {"train", cmd_train, "train a model from a YAML config (JSON line per epoch)"},
    {"eval", cmd_eval, "evaluate a saved model (HR@K, NDCG@K, MRR)"},
    {"adapt", cmd_adapt, "train LoRA adapters (shared, bank, per-user) on a frozen model"},
    {"adapters", cmd_adapters, "inspect, merge or update (lifelong) per-user adapters"},
    {"apen", cmd_apen, "Approximate Entropy of a dataset's user sequences"},
    {"perflaw", cmd_perflaw, "fit the Performance Law to sweep results (perflaw fit RUNS.csv)"},
    {"sweep", cmd_sweep, "train a grid of model sizes on data fractions, one CSV row per run"},
    {"bench", cmd_bench, "time training steps and kernels on this machine"},
    {"recommend", cmd_recommend, "top-K items for JSON-line histories (stdin or --input)"},
    {"serve", cmd_serve, "HTTP server: POST /v1/recommend, /healthz, /metrics, reload"},
    {"import", cmd_import, "model from a safetensors file (PyTorch weights; --from safetensors)"},
    {"export", cmd_export, "write a model's weights as safetensors (--to safetensors)"},
    {"info", cmd_info, "library version, CPU features and chosen kernels"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(void)
{
    fprintf(stderr, "usage: recsys <command> [options]   (recsys <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(stderr, "  %-9s %s\n", COMMANDS[i].name, COMMANDS[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("recsys %s\n", recsys_version_string());
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "recsys: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
}
