/* recsys serve's HTTP server on libmicrohttpd: a pool of request threads,
 * each with its own recsys_ctx (one compute thread) and session; the model
 * is reference-counted and swapped under a mutex on reload, so a request in
 * flight keeps the model its session holds while new requests get the new
 * one. With --adapters every worker opens the adapter store on its model
 * (again after a reload: adapters belong to one model object). Endpoints: POST /v1/recommend, POST /v1/reload, GET /healthz,
 * GET /metrics (Prometheus text format). */
#include "http_server.h"
#include "cli.h"
#include "request_json.h"
#include "user_adapters.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

static const double BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

enum { EP_RECOMMEND, EP_RELOAD, EP_HEALTHZ, EP_METRICS, EP_OTHER, EP_COUNT };
static const char *const EP_NAMES[EP_COUNT] = {"/v1/recommend", "/v1/reload", "/healthz",
                                               "/metrics", "other"};

typedef struct worker {
    recsys_ctx *ctx;
    recsys_session *session;
    recsys_model *model;      /* kept alive by the session's reference */
    uint64_t generation;
    user_adapters ua;         /* on model (empty without --adapters) */
} worker;

struct http_server {
    http_server_opts o;
    char *model_path;
    char *host;
    struct MHD_Daemon *d;
    pthread_key_t key;
    pthread_mutex_t mu;       /* guards model, generation, info */
    recsys_model *model;      /* the server's reference */
    uint64_t generation;
    recsys_model_info info;
    pthread_mutex_t reload_mu;
    recsys_ctx *data_ctx;     /* the --data set's (errors only) */
    recsys_dataset *users;    /* --data: read-only user id map shared by the workers */
    int port;
    /* metrics */
    atomic_ullong requests[EP_COUNT];
    atomic_ullong responses_4xx, responses_5xx;
    atomic_ullong scored;     /* recommendation requests answered (batch members) */
    atomic_ullong latency_count, latency_sum_ns;
    atomic_ullong latency_buckets[N_BUCKETS];
    atomic_ullong reloads, reload_failures;
};

typedef struct conn {
    rj_buf body;
    int too_big;
    int endpoint;
    struct timespec t0;
} conn;

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void worker_free(void *p)
{
    worker *w = p;
    if (!w) return;
    user_adapters_close(&w->ua);
    recsys_session_free(w->session);
    recsys_ctx_free(w->ctx);
    free(w);
}

/* This thread's worker, on the current model. NULL with err on failure. */
static worker *get_worker(http_server *s, char *err, size_t en)
{
    worker *w = pthread_getspecific(s->key);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w || recsys_ctx_new_with_threads(1, &w->ctx)) {
            free(w);
            snprintf(err, en, "out of memory for a request thread");
            return NULL;
        }
        pthread_setspecific(s->key, w);
    }
    pthread_mutex_lock(&s->mu);
    if (!w->session || w->generation != s->generation) {
        recsys_session *ns = NULL;
        recsys_status st = recsys_session_new(w->ctx, s->model, &ns);
        if (st) {
            pthread_mutex_unlock(&s->mu);
            snprintf(err, en, "cannot create a session: %s", recsys_ctx_errmsg(w->ctx));
            return NULL;
        }
        user_adapters ua = {0};
        if (s->o.adapters_path &&
            user_adapters_open(w->ctx, s->model, s->o.adapters_path, s->users, &ua, err, en)) {
            pthread_mutex_unlock(&s->mu);
            recsys_session_free(ns);
            return NULL;
        }
        user_adapters_close(&w->ua);
        w->ua = ua;
        recsys_session_free(w->session);
        w->session = ns;
        w->model = s->model;
        w->generation = s->generation;
    }
    pthread_mutex_unlock(&s->mu);
    return w;
}

static MHD_RESULT send_text(http_server *s, struct MHD_Connection *c, unsigned code, rj_buf *b,
                            const char *type)
{
    if (b->oom || !b->s) {
        free(b->s);
        b->s = NULL;
        b->len = 0;
        b->oom = 0;
        rj_write_error(b, "out of memory");
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        type = "application/json";
        if (!b->s) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(b->len, b->s, MHD_RESPMEM_MUST_FREE);
    b->s = NULL;
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_RESULT ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    if (code >= 500) atomic_fetch_add(&s->responses_5xx, 1);
    else if (code >= 400) atomic_fetch_add(&s->responses_4xx, 1);
    return ret;
}

static MHD_RESULT send_error(http_server *s, struct MHD_Connection *c, unsigned code,
                             const char *msg)
{
    rj_buf b = {0};
    rj_write_error(&b, msg);
    rj_buf_add(&b, "\n", 1);
    return send_text(s, c, code, &b, "application/json");
}

static const char *item_name(void *model, int32_t item) { return cli_item_name(model, item); }

static MHD_RESULT do_recommend(http_server *s, struct MHD_Connection *c, conn *cn)
{
    char err[700];
    worker *w = get_worker(s, err, sizeof err);
    if (!w) return send_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, err);
    recsys_model_info info = {.struct_size = sizeof info};
    recsys_model_info_get(w->model, &info);
    int k = s->o.default_k < info.n_items ? s->o.default_k : info.n_items;
    rj_limits lim = {.default_k = k, .max_k = info.n_items,
                     .default_exclude_history = s->o.exclude_history,
                     .max_requests = s->o.max_batch, .max_ids = 1u << 16};
    rj_batch b;
    if (rj_parse(cn->body.s ? cn->body.s : "", cn->body.len, &lim, cli_lookup_item, w->model, &b,
                 err, sizeof err))
        return send_error(s, c, MHD_HTTP_BAD_REQUEST, err);
    int max_k = 1;
    for (size_t i = 0; i < b.n; i++)
        if (b.reqs[i].k > max_k) max_k = b.reqs[i].k;
    size_t n = b.n ? b.n : 1;
    const recsys_request **reqs = malloc(sizeof *reqs * n);
    int32_t *items = malloc(sizeof *items * n * (size_t)max_k);
    float *scores = malloc(sizeof *scores * n * (size_t)max_k);
    size_t *got = malloc(sizeof *got * n);
    recsys_adapter **owned = calloc(n, sizeof *owned); /* the requests' store adapters */
    rj_buf out = {0};
    unsigned code = MHD_HTTP_OK;
    int bad = 0;
    for (size_t i = 0; owned && i < b.n && !bad; i++)
        bad = user_adapters_for(&w->ua, b.reqs[i].user_json, &b.reqs[i].req.adapter, &owned[i],
                                err, sizeof err);
    if (!reqs || !items || !scores || !got || !owned) {
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        rj_write_error(&out, "out of memory");
    } else if (bad) {
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        rj_write_error(&out, err);
    } else {
        for (size_t i = 0; i < b.n; i++) reqs[i] = &b.reqs[i].req;
        recsys_status st = recsys_session_topk_batch(w->session, reqs, b.n, (size_t)max_k, items,
                                                     scores, got);
        if (st) {
            code = st == RECSYS_E_NOMEM ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_BAD_REQUEST;
            rj_write_error(&out, recsys_ctx_errmsg(w->ctx));
        } else {
            if (b.is_batch) rj_buf_add(&out, "{\"results\": [", 13);
            for (size_t i = 0; i < b.n; i++) {
                if (i) rj_buf_add(&out, ", ", 2);
                rj_write_result(&out, &b.reqs[i], items + i * max_k, scores + i * max_k, got[i],
                                item_name, w->model);
            }
            if (b.is_batch) rj_buf_add(&out, "]}", 2);
            atomic_fetch_add(&s->scored, b.n);
        }
    }
    rj_buf_add(&out, "\n", 1);
    for (size_t i = 0; owned && i < b.n; i++) recsys_adapter_free(owned[i]);
    free(owned);
    free(reqs);
    free(items);
    free(scores);
    free(got);
    rj_batch_free(&b);
    return send_text(s, c, code, &out, "application/json");
}

static MHD_RESULT do_metrics(http_server *s, struct MHD_Connection *c)
{
    rj_buf b = {0};
    rj_buf_printf(&b, "# HELP recsys_http_requests_total HTTP requests by endpoint.\n"
                      "# TYPE recsys_http_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        rj_buf_printf(&b, "recsys_http_requests_total{endpoint=\"%s\"} %llu\n", EP_NAMES[e],
                      (unsigned long long)atomic_load(&s->requests[e]));
    rj_buf_printf(&b, "# HELP recsys_http_errors_total Error responses by class.\n"
                      "# TYPE recsys_http_errors_total counter\n"
                      "recsys_http_errors_total{class=\"4xx\"} %llu\n"
                      "recsys_http_errors_total{class=\"5xx\"} %llu\n",
                  (unsigned long long)atomic_load(&s->responses_4xx),
                  (unsigned long long)atomic_load(&s->responses_5xx));
    rj_buf_printf(&b, "# HELP recsys_recommendations_total Recommendation requests answered "
                      "(each member of a batch counts).\n"
                      "# TYPE recsys_recommendations_total counter\n"
                      "recsys_recommendations_total %llu\n",
                  (unsigned long long)atomic_load(&s->scored));
    rj_buf_printf(&b, "# HELP recsys_request_duration_seconds Latency of POST /v1/recommend.\n"
                      "# TYPE recsys_request_duration_seconds histogram\n");
    for (size_t i = 0; i < N_BUCKETS; i++)
        rj_buf_printf(&b, "recsys_request_duration_seconds_bucket{le=\"%g\"} %llu\n", BUCKETS[i],
                      (unsigned long long)atomic_load(&s->latency_buckets[i]));
    unsigned long long count = atomic_load(&s->latency_count);
    rj_buf_printf(&b, "recsys_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", count);
    rj_buf_printf(&b, "recsys_request_duration_seconds_sum %.9f\n",
                  1e-9 * (double)atomic_load(&s->latency_sum_ns));
    rj_buf_printf(&b, "recsys_request_duration_seconds_count %llu\n", count);
    pthread_mutex_lock(&s->mu);
    unsigned long long gen = s->generation;
    pthread_mutex_unlock(&s->mu);
    rj_buf_printf(&b, "# HELP recsys_model_reloads_total Model reloads (successful, failed).\n"
                      "# TYPE recsys_model_reloads_total counter\n"
                      "recsys_model_reloads_total{result=\"ok\"} %llu\n"
                      "recsys_model_reloads_total{result=\"failed\"} %llu\n"
                      "# HELP recsys_model_generation Generation of the model being served.\n"
                      "# TYPE recsys_model_generation gauge\n"
                      "recsys_model_generation %llu\n",
                  (unsigned long long)atomic_load(&s->reloads),
                  (unsigned long long)atomic_load(&s->reload_failures), gen);
    return send_text(s, c, MHD_HTTP_OK, &b, "text/plain; version=0.0.4");
}

static MHD_RESULT do_healthz(http_server *s, struct MHD_Connection *c)
{
    rj_buf b = {0};
    pthread_mutex_lock(&s->mu);
    rj_buf_printf(&b, "{\"status\": \"ok\", \"generation\": %llu, \"n_items\": %d, "
                      "\"max_len\": %d, \"dim\": %d, \"type\": \"%s\", \"time_bias\": %s}\n",
                  (unsigned long long)s->generation, (int)s->info.n_items, s->info.max_len,
                  s->info.dim, s->info.type == RECSYS_MODEL_HSTU ? "hstu" : "sasrec",
                  s->info.time_bias ? "true" : "false");
    pthread_mutex_unlock(&s->mu);
    return send_text(s, c, MHD_HTTP_OK, &b, "application/json");
}

static MHD_RESULT do_reload(http_server *s, struct MHD_Connection *c)
{
    char err[600];
    if (http_server_reload(s, err, sizeof err))
        return send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
    rj_buf b = {0};
    pthread_mutex_lock(&s->mu);
    rj_buf_printf(&b, "{\"reloaded\": true, \"generation\": %llu}\n",
                  (unsigned long long)s->generation);
    pthread_mutex_unlock(&s->mu);
    return send_text(s, c, MHD_HTTP_OK, &b, "application/json");
}

static int endpoint_of(const char *url)
{
    for (int e = 0; e < EP_OTHER; e++)
        if (!strcmp(url, EP_NAMES[e])) return e;
    return EP_OTHER;
}

static MHD_RESULT handler(void *cls, struct MHD_Connection *c, const char *url,
                          const char *method, const char *version, const char *upload_data,
                          size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &cn->t0);
        cn->endpoint = endpoint_of(url);
        *con_cls = cn;
        atomic_fetch_add(&s->requests[cn->endpoint], 1);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            cn->too_big = 2; /* answered now, before the body */
            char msg[96];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->o.max_body);
            return send_error(s, c, 413u, msg);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (cn->too_big != 2) {
            if (cn->body.len + *upload_data_size > s->o.max_body) cn->too_big = 1;
            else rj_buf_add(&cn->body, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cn->too_big == 2) return MHD_YES;
    int is_post = !strcmp(method, MHD_HTTP_METHOD_POST), is_get = !strcmp(method, MHD_HTTP_METHOD_GET);
    if (cn->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->o.max_body);
        return send_error(s, c, 413u, msg);
    }
    if (cn->body.oom) return send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    switch (cn->endpoint) {
    case EP_RECOMMEND:
        if (!is_post) return send_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        return do_recommend(s, c, cn);
    case EP_RELOAD:
        if (!is_post) return send_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        return do_reload(s, c);
    case EP_HEALTHZ:
        if (!is_get) return send_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return do_healthz(s, c);
    case EP_METRICS:
        if (!is_get) return send_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return do_metrics(s, c);
    default:
        return send_error(s, c, MHD_HTTP_NOT_FOUND, "no such endpoint");
    }
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    http_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) return;
    if (cn->endpoint == EP_RECOMMEND) {
        double t = seconds_since(&cn->t0);
        atomic_fetch_add(&s->latency_count, 1);
        atomic_fetch_add(&s->latency_sum_ns, (unsigned long long)(t * 1e9));
        for (size_t i = 0; i < N_BUCKETS; i++)
            if (t <= BUCKETS[i]) atomic_fetch_add(&s->latency_buckets[i], 1);
    }
    free(cn->body.s);
    free(cn);
    *con_cls = NULL;
}

/* Load the model file; a warm session builds its scoring table once here,
 * not in the first request after a reload. */
static int load_model(http_server *s, recsys_model **out, char *err, size_t en)
{
    recsys_ctx *ctx = NULL;
    recsys_session *warm = NULL;
    *out = NULL;
    if (recsys_ctx_new_with_threads(1, &ctx)) {
        snprintf(err, en, "out of memory");
        return 1;
    }
    recsys_status st = recsys_model_load(ctx, s->model_path, out);
    if (!st) st = recsys_session_new(ctx, *out, &warm);
    if (st) {
        snprintf(err, en, "cannot load '%s': %s (%s)", s->model_path, recsys_ctx_errmsg(ctx),
                 recsys_status_str(st));
        recsys_model_free(*out);
        *out = NULL;
    }
    recsys_session_free(warm);
    recsys_ctx_free(ctx);
    return st != RECSYS_OK;
}

int http_server_reload(http_server *s, char *err, size_t en)
{
    pthread_mutex_lock(&s->reload_mu); /* one reload at a time */
    recsys_model *m;
    if (load_model(s, &m, err, en)) {
        atomic_fetch_add(&s->reload_failures, 1);
        pthread_mutex_unlock(&s->reload_mu);
        return 1;
    }
    recsys_model_info info = {.struct_size = sizeof info};
    recsys_model_info_get(m, &info);
    pthread_mutex_lock(&s->mu);
    recsys_model *old = s->model;
    s->model = m;
    s->info = info;
    s->generation++;
    pthread_mutex_unlock(&s->mu);
    recsys_model_free(old); /* sessions still on it hold their own references */
    atomic_fetch_add(&s->reloads, 1);
    pthread_mutex_unlock(&s->reload_mu);
    return 0;
}

int http_server_port(const http_server *s) { return s->port; }

/* --data: the data set whose external user ids "user" names. */
static int load_users(http_server *s, char *err, size_t en)
{
    recsys_opts *opts = NULL;
    recsys_status st = recsys_ctx_new_with_threads(1, &s->data_ctx);
    if (!st) st = recsys_opts_new(s->data_ctx, &opts);
    if (!st) st = recsys_dataset_open(s->data_ctx, s->o.data_path, opts, &s->users);
    recsys_opts_free(opts);
    if (st) snprintf(err, en, "cannot load --data '%s': %s", s->o.data_path,
                     s->data_ctx ? recsys_ctx_errmsg(s->data_ctx) : recsys_status_str(st));
    return st != RECSYS_OK;
}

static void server_free(http_server *s)
{
    if (!s) return;
    recsys_model_free(s->model);
    recsys_dataset_free(s->users);
    recsys_ctx_free(s->data_ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->reload_mu);
    free(s->model_path);
    free(s->host);
    free(s);
}

int http_server_start(const http_server_opts *o, http_server **out, char *err, size_t en)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, en, "out of memory");
        return 1;
    }
    s->o = *o;
    s->model_path = strdup(o->model_path);
    s->host = strdup(o->host ? o->host : "127.0.0.1");
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    s->generation = 1;
    if (!s->model_path || !s->host || load_model(s, &s->model, err, en)) {
        if (!s->model_path || !s->host) snprintf(err, en, "out of memory");
        server_free(s);
        return 1;
    }
    s->info.struct_size = sizeof s->info;
    recsys_model_info_get(s->model, &s->info);
    if (o->data_path && load_users(s, err, en)) {
        server_free(s);
        return 1;
    }
    if (o->adapters_path) { /* fail at start, not in the first request */
        user_adapters ua;
        if ((!s->data_ctx && recsys_ctx_new_with_threads(1, &s->data_ctx)) ||
            user_adapters_open(s->data_ctx, s->model, o->adapters_path, s->users, &ua, err, en)) {
            server_free(s);
            return 1;
        }
        user_adapters_close(&ua);
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, s->host, &addr.sin_addr) != 1) {
        snprintf(err, en, "--host '%s' is not an IPv4 address", s->host);
        server_free(s);
        return 1;
    }
    if (pthread_key_create(&s->key, worker_free)) {
        snprintf(err, en, "cannot create a thread key");
        server_free(s);
        return 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads > 1 ? o->threads : 1),
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                            MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, en, "cannot listen on %s:%d (in use?)", s->host, o->port);
        pthread_key_delete(s->key);
        server_free(s);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
}

void http_server_stop(http_server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->d); /* joins the request threads: their workers are freed */
    pthread_key_delete(s->key);
    server_free(s);
}
