/* Serving: self-describing models (ids, info, checkpoint v2 and v1),
 * sessions == evaluation bit-for-bit with times, batch == single, vectors
 * out, thread-count contexts and shared pools. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "models/batch.h"
#include "models/model.h"
#include "checkpoint/checkpoint.h"
#include "serve/serve.h"
#include "models/model_meta.h"
#include "test_util.h"

#include <stdio.h>
#include <unistd.h>

typedef struct fx {
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    char path[128];
} fx;

/* A small HSTU (time bias on: the synthetic data has times) or SASRec,
 * trained one epoch so that every weight, the time bias too, matters.
 * "hstu:start" / "sasrec:start": with model.positions = start. */
static fx *make(const char *type_and_positions, int threads)
{
    char type[16];
    const char *colon = strchr(type_and_positions, ':');
    snprintf(type, sizeof type, "%.*s",
             colon ? (int)(colon - type_and_positions) : (int)strlen(type_and_positions),
             type_and_positions);
    fx *f = calloc(1, sizeof *f);
    f->ctx = new_ctx(threads);
    assert_int_equal(recsys_opts_new(f->ctx, &f->o), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "data.synthetic_users", "120"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "data.synthetic_items", "300"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "data.synthetic_length", "30"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "model.type", type), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "model.max_len", "20"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "model.dim", "16"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "model.heads", "2"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "trainer.batch_size", "32"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "eval.protocol", "full"), RECSYS_OK);
    if (colon) assert_int_equal(recsys_opts_set(f->o, "model.positions", colon + 1), RECSYS_OK);
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->o, &f->ds), RECSYS_OK);
    assert_int_equal(recsys_model_new(f->ctx, f->o, f->ds, &f->m), RECSYS_OK);
    recsys_trainer *t;
    assert_int_equal(recsys_trainer_new(f->ctx, f->m, f->ds, f->o, &t), RECSYS_OK);
    assert_int_equal(recsys_trainer_run_epoch(t, NULL), RECSYS_OK);
    recsys_trainer_free(t);
    snprintf(f->path, sizeof f->path, "/tmp/test_serve_%d_%s.ckpt", (int)getpid(), type);
    return f;
}

static void drop(fx *f)
{
    recsys_model_free(f->m);
    recsys_dataset_free(f->ds);
    recsys_opts_free(f->o);
    recsys_ctx_free(f->ctx);
    unlink(f->path);
    free(f);
}

/* ---------------------------------------------------- self-description */

static void test_model_info_and_ids(void **state)
{
    (void)state;
    fx *f = make("hstu", 2);
    recsys_model_info info = {.struct_size = sizeof info};
    assert_int_equal(recsys_model_info_get(f->m, &info), RECSYS_OK);
    double items, users;
    recsys_dataset_stat(f->ds, RECSYS_STAT_ITEMS, &items);
    recsys_dataset_stat(f->ds, RECSYS_STAT_USERS, &users);
    assert_int_equal(info.type, RECSYS_MODEL_HSTU);
    assert_int_equal(info.n_items, (int)items);
    assert_int_equal(info.max_len, 20);
    assert_int_equal(info.dim, 16);
    assert_int_equal(info.time_bias, 1);
    assert_int_equal(info.has_item_ids, 1);
    assert_int_equal(info.data_has_time, 1);
    assert_int_equal(info.n_users, (int64_t)users);
    assert_true(info.data_fingerprint != 0);
    assert_int_equal(info.positions_from_start, 0);
    assert_int_equal(info.data_fingerprint, rs_dataset_fingerprint(f->ds));
    /* A short struct_size gets only what it covers. */
    recsys_model_info small;
    memset(&small, 0xAB, sizeof small);
    small.struct_size = offsetof(recsys_model_info, n_items);
    assert_int_equal(recsys_model_info_get(f->m, &small), RECSYS_OK);
    assert_int_equal(small.type, RECSYS_MODEL_HSTU);
    assert_int_equal(small.n_items, (int32_t)0xABABABAB);

    /* Saved, reloaded without the dataset, asked by external ids. */
    assert_int_equal(recsys_model_save(f->ctx, f->m, f->path), RECSYS_OK);
    recsys_model *m2;
    assert_int_equal(recsys_model_load(f->ctx, f->path, &m2), RECSYS_OK);
    recsys_model_info info2 = {.struct_size = sizeof info2};
    assert_int_equal(recsys_model_info_get(m2, &info2), RECSYS_OK);
    assert_memory_equal(&info, &info2, sizeof info);
    for (int32_t i = 1; i <= info.n_items; i++) {
        const char *want, *got;
        int32_t back;
        assert_int_equal(recsys_dataset_item_name(f->ds, i, &want), RECSYS_OK);
        assert_int_equal(recsys_model_item_name(m2, i, &got), RECSYS_OK);
        assert_string_equal(want, got);
        assert_int_equal(recsys_model_item_id(m2, want, &back), RECSYS_OK);
        assert_int_equal(back, i);
    }
    int32_t it;
    assert_int_equal(recsys_model_item_id(m2, "no-such-item", &it), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_model_item_name(m2, 0, &(const char *){0}), RECSYS_E_INVALID);

    /* The reloaded model scores like the original. */
    recsys_session *s1, *s2;
    assert_int_equal(recsys_session_new(f->ctx, f->m, &s1), RECSYS_OK);
    assert_int_equal(recsys_session_new(f->ctx, m2, &s2), RECSYS_OK);
    const int32_t *hist;
    const int64_t *times;
    size_t n;
    assert_int_equal(recsys_dataset_user_items(f->ds, 3, &hist, &times, &n), RECSYS_OK);
    recsys_request r = RECSYS_REQUEST_INIT;
    r.history = hist;
    r.times = times;
    r.n_history = n;
    float *a = malloc(sizeof(float) * ((size_t)info.n_items + 1));
    float *b = malloc(sizeof(float) * ((size_t)info.n_items + 1));
    assert_int_equal(recsys_session_score_request(s1, &r, a, (size_t)info.n_items + 1), RECSYS_OK);
    assert_int_equal(recsys_session_score_request(s2, &r, b, (size_t)info.n_items + 1), RECSYS_OK);
    assert_memory_equal(a, b, sizeof(float) * ((size_t)info.n_items + 1));
    free(a);
    free(b);
    recsys_session_free(s1);
    recsys_session_free(s2);
    recsys_model_free(m2);
    drop(f);
}

/* A version 1 file (no IIDS/META) still loads; ids are then "1".."n". */
static void test_version1_checkpoint(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    rs_model_config cfg = {.type = RS_MODEL_SASREC, .n_items = 7, .max_len = 4, .dim = 4,
                           .blocks = 1, .heads = 1, .ffn_dim = 4, .dqk = 4, .dv = 4};
    rs_rng rng;
    rs_rng_seed(&rng, 3);
    recsys_model *m;
    assert_int_equal(rs_model_create(ctx, &cfg, &rng, &m), RECSYS_OK);
    char path[96];
    snprintf(path, sizeof path, "/tmp/test_serve_v1_%d.ckpt", (int)getpid());
    assert_int_equal(recsys_model_save(ctx, m, path), RECSYS_OK);
    /* Rewrite the version field to 1 and fix the whole-file CRC in END. */
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(len > 60 && len < sizeof buf);
    buf[8] = 1;
    size_t end = len - 16 - 12; /* the END section: head 12, payload 12, CRC 4 */
    assert_memory_equal(buf + end, "END ", 4);
    uint32_t crc = rs_crc32c(0, buf, end);
    for (int i = 0; i < 4; i++) buf[end + 12 + 8 + i] = (unsigned char)(crc >> (8 * i));
    uint32_t sc = rs_crc32c(0, buf + end, 24);
    for (int i = 0; i < 4; i++) buf[end + 24 + i] = (unsigned char)(sc >> (8 * i));
    fp = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
    recsys_model *m2;
    assert_int_equal(recsys_model_load(ctx, path, &m2), RECSYS_OK);
    recsys_model_info info = {.struct_size = sizeof info};
    assert_int_equal(recsys_model_info_get(m2, &info), RECSYS_OK);
    assert_int_equal(info.has_item_ids, 0);
    assert_int_equal(info.n_users, -1);
    int32_t it;
    assert_int_equal(recsys_model_item_id(m2, "5", &it), RECSYS_OK);
    assert_int_equal(it, 5);
    assert_int_equal(recsys_model_item_id(m2, "8", &it), RECSYS_E_NOT_FOUND);
    assert_memory_equal(m->params, m2->params, m->n_params * sizeof(float));
    recsys_model_free(m2);
    /* version 3 is refused */
    buf[8] = 3;
    fp = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
    assert_int_equal(recsys_model_load(ctx, path, &m2), RECSYS_E_FORMAT);
    recsys_model_free(m);
    unlink(path);
    recsys_ctx_free(ctx);
}

/* ------------------------------------------------ session == evaluate */

/* Scores of evaluated users computed the way recsys_evaluate does (a batch
 * of input rows, the scoring GEMM over the normalised table) against the
 * session's, bit for bit; then the session's full-ranking MRR against
 * recsys_evaluate's. */
static void session_equals_eval(const char *type)
{
    fx *f = make(type, 2);
    const rs_model_config *cfg = &f->m->cfg;
    int32_t N = cfg->n_items;
    int L = cfg->max_len, d = cfg->dim;
    const recsys_dataset *ds = f->ds;
    if (!strncmp(type, "hstu", 4)) assert_int_equal(cfg->time_bias, 1);
    assert_int_equal(cfg->pos_from_start, strstr(type, ":start") != NULL);
    enum { B = 32 };
    rs_batch_buf bb;
    assert_int_equal(rs_batch_buf_init(f->ctx, &bb, B, L, 0, 1), RECSYS_OK);
    rs_workspace *ws = f->m->ops->ws_new(cfg, B);
    float *F = rs_calloc((size_t)B * L, (size_t)d * sizeof(float));
    float *table = cfg->l2norm ? rs_normalised_table(rs_model_items(f->m), N, d)
                               : (float *)rs_model_items(f->m);
    float *ref = malloc(sizeof(float) * (size_t)B * N);
    float *got = malloc(sizeof(float) * ((size_t)N + 1));
    int64_t users[B];
    int rows = 0;
    recsys_session *s;
    assert_int_equal(recsys_session_new(f->ctx, f->m, &s), RECSYS_OK);
    double rr_sum = 0;
    int64_t n_users = 0;
    for (int64_t u = 0; u < ds->n_users && rows < B; u++) {
        if (!rs_user_evaluated(ds, u)) continue;
        users[rows] = u;
        rs_batch_fill_input_row(&bb, rows, ds, u, rs_user_train_len(ds, u) + 1); /* test split */
        rows++;
    }
    /* The full forward (every position, every block) ... */
    rs_batch b = rs_batch_view(&bb, rows, 0, 0);
    assert_int_equal(f->m->ops->forward(f->ctx, cfg, f->m->params, ws, &b, F), RECSYS_OK);
    rs_gemm(f->ctx, 0, 1, rows, N, d, 1.0f, F + (size_t)(L - 1) * d, L * d, table + d, d, 0.0f,
            ref, N);
    /* ... and the last-position forward evaluation and sessions run agree
     * within 1e-5 (test_last_only_equals_full); the latter is the reference
     * sessions must match bit for bit. */
    float *last = rs_malloc(sizeof(float) * rs_last_scratch_floats(cfg, B));
    float *ref_full = malloc(sizeof(float) * (size_t)B * N);
    memcpy(ref_full, ref, sizeof(float) * (size_t)rows * N);
    b.last_scratch = last;
    assert_int_equal(f->m->ops->forward(f->ctx, cfg, f->m->params, ws, &b, F), RECSYS_OK);
    rs_gemm(f->ctx, 0, 1, rows, N, d, 1.0f, F + (size_t)(L - 1) * d, L * d, table + d, d, 0.0f,
            ref, N);
    for (size_t i = 0; i < (size_t)rows * N; i++)
        if (fabsf(ref[i] - ref_full[i]) > 1e-5f)
            fail_msg("%s: last-position score %zu: %.9g, full forward %.9g", type, i, ref[i],
                     ref_full[i]);
    free(ref_full);
    rs_free(last);
    for (int r = 0; r < rows; r++) {
        int64_t u = users[r];
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = ds->items + ds->offsets[u];
        q.times = ds->times + ds->offsets[u];
        q.n_history = (size_t)rs_user_train_len(ds, u) + 1;
        assert_int_equal(recsys_session_score_request(s, &q, got, (size_t)N + 1), RECSYS_OK);
        if (memcmp(got + 1, ref + (size_t)r * N, sizeof(float) * (size_t)N))
            fail_msg("%s: user %lld: session scores differ from evaluation's", type, (long long)u);
    }
    /* Without times, the time bias makes a difference (so times matter). */
    if (cfg->type == RS_MODEL_HSTU) {
        int64_t u = users[0];
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = ds->items + ds->offsets[u];
        q.n_history = (size_t)rs_user_train_len(ds, u) + 1;
        assert_int_equal(recsys_session_score_request(s, &q, got, (size_t)N + 1), RECSYS_OK);
        assert_true(memcmp(got + 1, ref, sizeof(float) * (size_t)N) != 0);
    }
    /* MRR over every evaluated user (test split, full ranking). */
    for (int64_t u = 0; u < ds->n_users; u++) {
        if (!rs_user_evaluated(ds, u)) continue;
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = ds->items + ds->offsets[u];
        q.times = ds->times + ds->offsets[u];
        q.n_history = (size_t)rs_user_train_len(ds, u) + 1;
        int32_t target = ds->items[ds->offsets[u] + (int64_t)q.n_history];
        q.exclude_history = 1; /* eval.exclude_history is on by default */
        assert_int_equal(recsys_session_score_request(s, &q, got, (size_t)N + 1), RECSYS_OK);
        {
            recsys_request q2 = q;
            q2.exclude_history = 0;
            float *raw = malloc(sizeof(float) * ((size_t)N + 1));
            assert_int_equal(recsys_session_score_request(s, &q2, raw, (size_t)N + 1), RECSYS_OK);
            got[target] = raw[target];
            free(raw);
        }
        double greater = 0, ties = 0;
        for (int32_t i = 1; i <= N; i++) {
            if (i == target || got[i] == -INFINITY) continue;
            greater += got[i] > got[target];
            ties += got[i] == got[target];
        }
        rr_sum += 1.0 / (greater + 0.5 * ties + 1.0);
        n_users++;
    }
    assert_int_equal(recsys_opts_set(f->o, "eval.split", "test"), RECSYS_OK);
    recsys_metrics *met;
    assert_int_equal(recsys_evaluate(f->ctx, f->m, ds, f->o, &met), RECSYS_OK);
    double mrr, nu;
    assert_int_equal(recsys_metrics_get(met, "MRR", &mrr), RECSYS_OK);
    assert_int_equal(recsys_metrics_get(met, "users", &nu), RECSYS_OK);
    assert_int_equal((int64_t)nu, n_users);
    if (fabs(mrr - rr_sum / (double)n_users) > 1e-12)
        fail_msg("%s: MRR evaluate %.9f, sessions %.9f", type, mrr, rr_sum / (double)n_users);
    recsys_metrics_free(met);
    recsys_session_free(s);
    if (cfg->l2norm) rs_free(table);
    free(ref);
    free(got);
    rs_free(F);
    f->m->ops->ws_free(ws);
    rs_batch_buf_free(&bb);
    drop(f);
}

static void test_session_equals_evaluate_hstu(void **state) { (void)state; session_equals_eval("hstu"); }
static void test_session_equals_evaluate_sasrec(void **state) { (void)state; session_equals_eval("sasrec"); }
/* the same with positions counted from the start (trained that way) */
static void test_session_equals_evaluate_start(void **state)
{
    (void)state;
    session_equals_eval("hstu:start");
}

/* ------------------------------------------------------------- batch */

static void test_batch_equals_single(void **state)
{
    (void)state;
    fx *f = make("hstu", 2);
    const recsys_dataset *ds = f->ds;
    int32_t N = f->m->cfg.n_items;
    enum { NR = 150, K = 10 };
    recsys_request reqs[NR];
    const recsys_request *ptrs[NR];
    uint8_t *mask = calloc((size_t)N + 1, 1);
    mask[5] = mask[6] = 1;
    int32_t cands[40];
    for (int i = 0; i < 40; i++) cands[i] = 1 + (i * 7) % N;
    int32_t excl[2] = {1, 2};
    for (int i = 0; i < NR; i++) {
        int64_t u = i % ds->n_users;
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = ds->items + ds->offsets[u];
        q.times = ds->times + ds->offsets[u];
        q.n_history = (size_t)(rs_user_len(ds, u) - i % 5); /* various lengths */
        q.k = 1 + i % K;
        q.exclude_history = i % 2;
        if (i % 3 == 0) { q.exclude = excl; q.n_exclude = 2; }
        if (i % 7 == 0) q.exclude_mask = mask;
        if (i % 11 == 0) { q.candidates = cands; q.n_candidates = 40; }
        if (i == 4) q.n_history = 0; /* empty history */
        reqs[i] = q;
        ptrs[i] = &reqs[i];
    }
    int32_t *bi = calloc(NR * K, sizeof *bi), si[K];
    float *bs = calloc(NR * K, sizeof *bs), ss[K];
    size_t bn[NR], sn;
    recsys_session *s;
    assert_int_equal(recsys_session_new(f->ctx, f->m, &s), RECSYS_OK);
    /* a single call first: the batch must grow the session's buffers */
    assert_int_equal(recsys_session_topk_request(s, &reqs[0], si, ss, &sn), RECSYS_OK);
    assert_int_equal(recsys_session_topk_batch(s, ptrs, NR, K, bi, bs, bn), RECSYS_OK);
    for (int i = 0; i < NR; i++) {
        assert_int_equal(recsys_session_topk_request(s, &reqs[i], si, ss, &sn), RECSYS_OK);
        assert_int_equal(sn, bn[i]);
        assert_int_equal(sn, (size_t)reqs[i].k);
        assert_memory_equal(si, bi + i * K, sn * sizeof *si);
        assert_memory_equal(ss, bs + i * K, sn * sizeof *ss);
        for (size_t j = 0; j < sn; j++) {
            int32_t it = si[j];
            if (j) assert_true(ss[j] <= ss[j - 1]);
            assert_false(mask[it] && reqs[i].exclude_mask);
            if (reqs[i].n_exclude) assert_true(it != 1 && it != 2);
            if (reqs[i].exclude_history)
                for (size_t h = 0; h < reqs[i].n_history; h++) assert_true(reqs[i].history[h] != it);
            if (reqs[i].candidates) {
                int in = 0;
                for (int c = 0; c < 40; c++) in |= cands[c] == it;
                assert_true(in);
            }
        }
    }
    /* The top-k agrees with the full scores. */
    float *all = malloc(sizeof(float) * ((size_t)N + 1));
    assert_int_equal(recsys_session_score_request(s, &reqs[1], all, (size_t)N + 1), RECSYS_OK);
    for (size_t j = 0; j < bn[1]; j++) assert_true(all[bi[K + j]] == bs[K + j]);
    for (int32_t it = 1; it <= N; it++) assert_true(all[it] <= bs[K] || it == bi[K]);
    /* An invalid request fails the whole call, naming its index. */
    int32_t bad = N + 1;
    reqs[7].history = &bad;
    reqs[7].n_history = 1;
    assert_int_equal(recsys_session_topk_batch(s, ptrs, NR, K, bi, bs, bn), RECSYS_E_NOT_FOUND);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "request 7"));
    reqs[7].n_history = 0;
    reqs[8].k = K + 1;
    assert_int_equal(recsys_session_topk_batch(s, ptrs, NR, K, bi, bs, bn), RECSYS_E_INVALID);
    free(all);
    free(mask);
    free(bi);
    free(bs);
    recsys_session_free(s);
    drop(f);
}

/* ---------------------------------------------------------- vectors out */

static void test_vectors_out(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        fx *f = make(t ? "hstu" : "sasrec", 1);
        int32_t N = f->m->cfg.n_items, rows;
        int dim;
        const float *tab, *vecs;
        assert_int_equal(recsys_model_item_table(f->m, &tab, &rows, &dim), RECSYS_OK);
        assert_ptr_equal(tab, rs_model_items(f->m)); /* zero-copy */
        assert_int_equal(rows, N + 1);
        assert_int_equal(recsys_model_item_vectors(f->m, &vecs, &rows, &dim), RECSYS_OK);
        if (!f->m->cfg.l2norm) assert_ptr_equal(vecs, tab);
        recsys_session *s;
        assert_int_equal(recsys_session_new(f->ctx, f->m, &s), RECSYS_OK);
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = f->ds->items;
        q.times = f->ds->times;
        q.n_history = 9;
        float u[64], *sc = malloc(sizeof(float) * ((size_t)N + 1));
        assert_int_equal(recsys_session_user_vector(s, &q, u, 64), RECSYS_OK);
        assert_int_equal(recsys_session_user_vector(s, &q, u, 3), RECSYS_E_INVALID);
        assert_int_equal(recsys_session_score_request(s, &q, sc, (size_t)N + 1), RECSYS_OK);
        for (int32_t i = 1; i <= N; i++) {
            double dot = 0, mag = 0;
            for (int c = 0; c < dim; c++) {
                dot += (double)u[c] * vecs[(size_t)i * dim + c];
                mag += fabs((double)u[c] * vecs[(size_t)i * dim + c]);
            }
            assert_true(fabs(dot - sc[i]) <= 1e-5 * (mag + 1e-6));
        }
        free(sc);
        recsys_session_free(s);
        drop(f);
    }
}

/* ------------------------------------------------------------- threads */

static void test_thread_pools(void **state)
{
    (void)state;
    recsys_ctx *c1;
    assert_int_equal(recsys_ctx_new_with_threads(0, &c1), RECSYS_E_INVALID);
    assert_int_equal(recsys_ctx_new_with_threads(1, &c1), RECSYS_OK);
    assert_int_equal(recsys_ctx_threads(c1), 1);
    recsys_threadpool *tp;
    assert_int_equal(recsys_threadpool_new(2, &tp), RECSYS_OK);
    recsys_ctx *a, *b;
    assert_int_equal(recsys_ctx_new_shared(tp, &a), RECSYS_OK);
    assert_int_equal(recsys_ctx_new_shared(tp, &b), RECSYS_OK);
    recsys_threadpool_free(tp); /* the contexts keep it alive */
    assert_int_equal(recsys_ctx_threads(a), 2);
    assert_int_equal(recsys_ctx_set_threads(a, 4), RECSYS_E_STATE);
    /* The same results on every kind of ctx. */
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    assert_int_equal(recsys_opts_new(c1, &o), RECSYS_OK);
    recsys_opts_set(o, "data.synthetic_users", "60");
    recsys_opts_set(o, "data.synthetic_items", "100");
    recsys_opts_set(o, "model.max_len", "16");
    recsys_opts_set(o, "model.dim", "16");
    assert_int_equal(recsys_dataset_synthetic(c1, o, &ds), RECSYS_OK);
    assert_int_equal(recsys_model_new(c1, o, ds, &m), RECSYS_OK);
    recsys_ctx *ctxs[3] = {c1, a, b};
    int32_t top[3][5];
    for (int i = 0; i < 3; i++) {
        recsys_session *s;
        assert_int_equal(recsys_session_new(ctxs[i], m, &s), RECSYS_OK);
        assert_int_equal(recsys_session_topk(s, ds->items, 10, 5, 1, top[i], NULL), RECSYS_OK);
        recsys_session_free(s);
    }
    assert_memory_equal(top[0], top[1], sizeof top[0]);
    assert_memory_equal(top[0], top[2], sizeof top[0]);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(a);
    recsys_ctx_free(b);
    recsys_ctx_free(c1);
}

/* Top-k against a sort of the full scores, for requests with and without
 * each kind of exclusion and k from 1 to 120: the same items in the same
 * order (ties: lower id first) and the same scores. 300 items: several
 * 16-score blocks per request, most skipped once the heap is full. */
typedef struct ranked { float s; int32_t it; } ranked;
static int by_rank(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->it < y->it ? -1 : x->it > y->it;
}

static void test_topk_equals_sorted_scores(void **state)
{
    (void)state;
    fx *f = make("sasrec", 1);
    int32_t N = f->m->cfg.n_items;
    recsys_session *s;
    assert_int_equal(recsys_session_new(f->ctx, f->m, &s), RECSYS_OK);
    float *all = malloc(sizeof(float) * ((size_t)N + 1)), *ts = malloc(sizeof(float) * 120);
    ranked *ref = malloc(sizeof(ranked) * (size_t)N);
    int32_t *ti = malloc(sizeof(int32_t) * 120), excl[5] = {3, 17, 42, 99, 250};
    uint8_t *mask = calloc((size_t)N + 1, 1);
    for (int32_t i = 7; i <= N; i += 11) mask[i] = 1;
    const int ks[] = {1, 10, 120};
    for (int64_t u = 0; u < 24; u++) {
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = f->ds->items + f->ds->offsets[u];
        q.times = f->ds->times + f->ds->offsets[u];
        q.n_history = (size_t)rs_user_len(f->ds, u);
        q.k = ks[u % 3];
        q.exclude_history = (int)(u & 1);
        if (u % 4 >= 2) { q.exclude = excl; q.n_exclude = 5; }
        if (u % 8 >= 4) q.exclude_mask = mask;
        assert_int_equal(recsys_session_score_request(s, &q, all, (size_t)N + 1), RECSYS_OK);
        int n = 0;
        for (int32_t i = 1; i <= N; i++)
            if (all[i] != -INFINITY) ref[n++] = (ranked){all[i], i};
        qsort(ref, (size_t)n, sizeof *ref, by_rank);
        size_t got = 0;
        assert_int_equal(recsys_session_topk_request(s, &q, ti, ts, &got), RECSYS_OK);
        assert_int_equal(got, (size_t)(q.k < n ? q.k : n));
        for (size_t i = 0; i < got; i++) {
            assert_int_equal(ti[i], ref[i].it);
            assert_true(ts[i] == ref[i].s);
        }
    }
    free(all);
    free(ts);
    free(ref);
    free(ti);
    free(mask);
    recsys_session_free(s);
    drop(f);
}

/* ------------------------------------------------ incremental state */

/* Appending events one at a time to a user state and re-ranking gives the
 * scores of the full history recomputed (within 1e-5; the same path, so
 * in fact equal), across the window filling up and sliding. */
static void user_state_equals_full(const char *type)
{
    fx *f = make(type, 1);
    const recsys_dataset *ds = f->ds;
    int32_t N = f->m->cfg.n_items;
    int L = f->m->cfg.max_len;
    recsys_session *s;
    recsys_user_state *u;
    assert_int_equal(recsys_session_new(f->ctx, f->m, &s), RECSYS_OK);
    assert_int_equal(recsys_user_state_new(f->m, &u), RECSYS_OK);
    size_t bytes = 0;
    assert_int_equal(recsys_user_state_bytes(u, &bytes), RECSYS_OK);
    assert_true(bytes >= (size_t)L * 12);
    float *a = malloc(sizeof(float) * ((size_t)N + 1)), *b = malloc(sizeof(float) * ((size_t)N + 1));
    int64_t user = 3;
    const int32_t *items = ds->items + ds->offsets[user];
    const int64_t *times = ds->times + ds->offsets[user];
    int64_t n = rs_user_len(ds, user);
    /* more events than 2 L: the buffer wraps */
    int total = 2 * L + 7;
    for (int e = 0; e < total; e++) {
        int32_t it = items[e % n];
        int64_t t = times[n - 1] + 1000 * e; /* non-decreasing */
        assert_int_equal(recsys_user_state_append(u, it, t), RECSYS_OK);
        recsys_request q = RECSYS_REQUEST_INIT;
        assert_int_equal(recsys_user_state_request(u, &q), RECSYS_OK);
        assert_int_equal(q.n_history, (size_t)(e + 1 < L ? e + 1 : L));
        assert_int_equal(q.history[q.n_history - 1], it);
        assert_int_equal(recsys_session_score_request(s, &q, a, (size_t)N + 1), RECSYS_OK);
        /* the full history, rebuilt from scratch */
        int32_t *h = malloc(sizeof(int32_t) * (size_t)(e + 1));
        int64_t *ht = malloc(sizeof(int64_t) * (size_t)(e + 1));
        for (int k = 0; k <= e; k++) {
            h[k] = items[k % n];
            ht[k] = times[n - 1] + 1000 * k;
        }
        recsys_request full = RECSYS_REQUEST_INIT;
        full.history = h;
        full.times = ht;
        full.n_history = (size_t)(e + 1);
        assert_int_equal(recsys_session_score_request(s, &full, b, (size_t)N + 1), RECSYS_OK);
        for (int32_t i = 1; i <= N; i++) assert_true(fabsf(a[i] - b[i]) <= 1e-5f);
        free(h);
        free(ht);
    }
    assert_int_equal(recsys_user_state_append(u, N + 1, times[n - 1] + 1000 * total),
                     RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_user_state_append(u, 1, 0), RECSYS_E_INVALID); /* time goes back */
    assert_int_equal(recsys_user_state_clear(u), RECSYS_OK);
    recsys_request q = RECSYS_REQUEST_INIT;
    assert_int_equal(recsys_user_state_request(u, &q), RECSYS_OK);
    assert_int_equal(q.n_history, 0);
    free(a);
    free(b);
    recsys_user_state_free(u);
    recsys_session_free(s);
    drop(f);
}

static void test_user_state_hstu(void **state) { (void)state; user_state_equals_full("hstu"); }
static void test_user_state_sasrec(void **state) { (void)state; user_state_equals_full("sasrec"); }

/* ------------------------------------------- last-position forward */

/* The serving forward (last block for the last position only) against the
 * full forward, every SASRec placement and HSTU with and without time
 * bias, rows of every length (empty, 1, partial, full). */
static void last_only_case(const char *type, const char *norm, const char *time_bias, int heads)
{
    recsys_ctx *ctx = new_ctx(2);
    recsys_opts *o;
    assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
    recsys_opts_set(o, "model.type", type);
    recsys_opts_set(o, "model.norm", norm);
    recsys_opts_set(o, "model.time_bias", time_bias);
    recsys_opts_set_int(o, "model.heads", heads);
    recsys_opts_set_int(o, "model.dim", 12);
    recsys_opts_set_int(o, "model.max_len", 9);
    recsys_opts_set_int(o, "model.blocks", 3);
    recsys_model *m;
    assert_int_equal(recsys_model_new_blank(ctx, o, 40, &m), RECSYS_OK);
    const rs_model_config *c = &m->cfg;
    int B = 12, L = c->max_len, d = c->dim;
    rs_batch_buf bb;
    assert_int_equal(rs_batch_buf_init(ctx, &bb, B, L, 0, 1), RECSYS_OK);
    int32_t hist[40];
    int64_t times[40];
    for (int i = 0; i < 40; i++) {
        hist[i] = 1 + (i * 13) % 40;
        times[i] = 1000 + (int64_t)i * i * 977;
    }
    for (int r = 0; r < B; r++) rs_batch_fill_history_row(&bb, r, hist + r, times + r, (size_t)r);
    rs_workspace *ws = m->ops->ws_new(c, B);
    float *F1 = rs_calloc((size_t)B * L, (size_t)d * sizeof(float));
    float *F2 = rs_calloc((size_t)B * L, (size_t)d * sizeof(float));
    float *last = rs_malloc(sizeof(float) * rs_last_scratch_floats(c, B));
    rs_batch b = rs_batch_view(&bb, B, 0, 0);
    assert_int_equal(m->ops->forward(ctx, c, m->params, ws, &b, F1), RECSYS_OK);
    b.last_scratch = last;
    assert_int_equal(m->ops->forward(ctx, c, m->params, ws, &b, F2), RECSYS_OK);
    double worst = 0;
    for (int r = 0; r < B; r++)
        for (int t = 0; t < d; t++) {
            size_t i = ((size_t)r * L + (size_t)(L - 1)) * d + (size_t)t;
            double e = fabs((double)F1[i] - (double)F2[i]);
            if (e > worst) worst = e;
        }
    if (worst > 1e-5)
        fail_msg("%s/%s/time %s/heads %d: last-position forward differs by %.3g", type, norm,
                 time_bias, heads, worst);
    rs_free(F1);
    rs_free(F2);
    rs_free(last);
    m->ops->ws_free(ws);
    rs_batch_buf_free(&bb);
    recsys_model_free(m);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
}

static void test_last_only_equals_full(void **state)
{
    (void)state;
    last_only_case("sasrec", "original", "off", 1);
    last_only_case("sasrec", "original", "off", 3);
    last_only_case("sasrec", "post", "off", 2);
    last_only_case("sasrec", "pre", "off", 4);
    last_only_case("hstu", "original", "on", 1);
    last_only_case("hstu", "original", "on", 3);
    last_only_case("hstu", "original", "off", 2);
}

/* A single request scores through the panel copy of the item table when the
 * model has one (tables up to 64 MiB, d <= 256) and through a one-row GEMM
 * otherwise: both give the batch's bits. d = 264 has no panels. */
static void test_single_with_and_without_panels(void **state)
{
    (void)state;
    for (int wide = 0; wide < 2; wide++) {
        recsys_ctx *ctx = new_ctx(1);
        recsys_opts *o;
        recsys_dataset *ds;
        recsys_model *m;
        assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "data.synthetic_users", "20"), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "data.synthetic_items", "70"), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "data.synthetic_length", "12"), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "model.max_len", "8"), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "model.blocks", "1"), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "model.dim", wide ? "264" : "24"), RECSYS_OK);
        assert_int_equal(recsys_dataset_synthetic(ctx, o, &ds), RECSYS_OK);
        assert_int_equal(recsys_model_new(ctx, o, ds, &m), RECSYS_OK);
        rs_score_table *t;
        assert_int_equal(rs_score_table_get(ctx, m, &t), RECSYS_OK);
        assert_true(wide ? t->panels == NULL : t->panels != NULL);
        rs_score_table_unref(t);
        enum { NR = 6, K = 5 };
        recsys_request reqs[NR];
        const recsys_request *ptrs[NR];
        for (int i = 0; i < NR; i++) {
            const int32_t *items;
            const int64_t *times;
            size_t n;
            assert_int_equal(recsys_dataset_user_items(ds, i, &items, &times, &n), RECSYS_OK);
            recsys_request q = RECSYS_REQUEST_INIT;
            q.history = items;
            q.times = times;
            q.n_history = n;
            q.k = K;
            reqs[i] = q;
            ptrs[i] = &reqs[i];
        }
        recsys_session *s;
        assert_int_equal(recsys_session_new(ctx, m, &s), RECSYS_OK);
        int32_t bi[NR * K], si[K];
        float bs[NR * K], ss[K];
        assert_int_equal(recsys_session_topk_batch(s, ptrs, NR, K, bi, bs, NULL), RECSYS_OK);
        for (int i = 0; i < NR; i++) {
            assert_int_equal(recsys_session_topk_request(s, &reqs[i], si, ss, NULL), RECSYS_OK);
            assert_memory_equal(si, bi + i * K, sizeof si);
            assert_memory_equal(ss, bs + i * K, sizeof ss);
        }
        recsys_session_free(s);
        recsys_model_free(m);
        recsys_dataset_free(ds);
        recsys_opts_free(o);
        recsys_ctx_free(ctx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_info_and_ids),
        cmocka_unit_test(test_version1_checkpoint),
        cmocka_unit_test(test_session_equals_evaluate_hstu),
        cmocka_unit_test(test_session_equals_evaluate_sasrec),
        cmocka_unit_test(test_session_equals_evaluate_start),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_single_with_and_without_panels),
        cmocka_unit_test(test_vectors_out),
        cmocka_unit_test(test_thread_pools),
        cmocka_unit_test(test_user_state_hstu),
        cmocka_unit_test(test_last_only_equals_full),
        cmocka_unit_test(test_user_state_sasrec),
        cmocka_unit_test(test_topk_equals_sorted_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
