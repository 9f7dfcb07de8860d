/* Helpers shared by the recsys subcommands. */
#ifndef RECSYS_CLI_H
#define RECSYS_CLI_H

#include <librecsys/recsys.h>
#include <stdio.h>

/* Print "recsys <cmd>: <message>" (with the ctx's error) to stderr; returns 1. */
int cli_fail(const char *cmd, recsys_ctx *ctx, recsys_status st, const char *what);
/* Apply "key=value" to opts. */
/* Load the YAML named by --config (the last one given) into opts, before the
 * --set overrides; 0, or 1 after printing the error. *config: the path or NULL. */
int cli_load_config(const char *cmd, recsys_ctx *ctx, recsys_opts *opts, int argc,
                    char **argv, const char **config);
recsys_status cli_set_kv(recsys_opts *opts, const char *kv);
/* Write a metrics object as JSON members ("HR@10": 0.5, ...) without braces. */
void cli_json_metrics(FILE *f, const recsys_metrics *m, const char *prefix);
/* Monotonic wall clock in seconds. */
double cli_now(void);
/* Write a JSON string value with escaping. */
void cli_json_string(FILE *f, const char *s);

/* Progress line on stderr (only when it is a terminal). */
typedef struct cli_progress {
    int enabled;
    double last_draw;
} cli_progress;
void cli_progress_init(cli_progress *p);
int cli_progress_train(void *user, const recsys_progress *p); /* recsys_progress_fn */
void cli_progress_clear(cli_progress *p);

/* recsys_model_item_id / _name as callbacks (the model as user data). */
int32_t cli_lookup_item(void *model, const char *id);
const char *cli_item_name(void *model, int32_t item);

/* Write len bytes to path through path.tmp and a rename, so readers see the
 * old file or the whole new one. 0 on success. */
int cli_write_file_atomic(const char *path, const void *buf, size_t len);

#endif
