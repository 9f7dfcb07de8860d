/* The HTTP server behind `recsys serve` (libmicrohttpd + jansson). All its
 * state hangs off an http_server; nothing is global. */
#ifndef RECSYS_CLI_HTTP_SERVER_H
#define RECSYS_CLI_HTTP_SERVER_H

#include <stddef.h>

typedef struct http_server_opts {
    const char *model_path;   /* loaded at start and on every reload */
    const char *host;         /* address to bind, default "127.0.0.1" */
    int port;                 /* 0: any free port (see http_server_port) */
    int threads;              /* request threads, each with its own ctx (1 compute thread) */
    size_t max_body;          /* bigger request bodies get 413 */
    size_t max_batch;         /* requests per POST */
    int default_k, exclude_history;
    const char *adapters_path; /* --adapters (user_adapters.h), or NULL; reopened on reload */
    const char *data_path;     /* --data: external user ids for --adapters, or NULL */
} http_server_opts;

typedef struct http_server http_server;

/* Load the model and start listening. Returns 0, or 1 with err set. */
int http_server_start(const http_server_opts *o, http_server **out, char *err, size_t err_size);
int http_server_port(const http_server *s);
/* Load model_path again and swap it in atomically; requests in flight finish
 * on the model they started with. Returns 0, or 1 with err set (the old
 * model stays). Thread-safe. */
int http_server_reload(http_server *s, char *err, size_t err_size);
/* Stop accepting, finish the requests in flight, free everything. */
void http_server_stop(http_server *s);

#endif
