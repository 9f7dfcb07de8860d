/* The recsys subcommands: argv[0] is the subcommand name; each returns the
 * process exit code and reports errors on stderr as "recsys <cmd>: ...". */
#ifndef RECSYS_CLI_COMMANDS_H
#define RECSYS_CLI_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_apen(int argc, char **argv);
int cmd_perflaw(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_adapters(int argc, char **argv);

#include <librecsys/recsys.h>
/* ADAPTERS: a store (RSADAPTS) -> *st, else one adapter file -> *a; -1 on failure. */
int cli_load_adapters(recsys_ctx *ctx, recsys_model *m, const char *path, const recsys_opts *opts,
                      int writable, recsys_adapter **a, recsys_adapter_store **st);

#endif
