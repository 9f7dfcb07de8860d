/* User states with cached keys and values, differentially: the input bytes
 * are a program of appends (item, time step, possibly backwards or out of
 * range: errors expected), clears and re-ranks on two small models
 * positioned from the start (HSTU with the time bias, SASRec). Every
 * re-rank through the state (recsys_session_score_state: cached rows,
 * chunks, the window filling and sliding) must equal, within 1e-4, the
 * scores of the same window sent as a request (the model's forward);
 * anything else aborts, which libFuzzer reports. */
#include "fuzz_common.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_ITEMS 30
#define MAX_LEN 20

typedef struct fixture {
    recsys_model *m;
    recsys_session *s;
} fixture;

static void make(recsys_ctx *ctx, const char *type, fixture *f)
{
    recsys_opts *o;
    if (recsys_opts_new(ctx, &o)) abort();
    recsys_opts_set(o, "model.type", type);
    recsys_opts_set(o, "model.positions", "start");
    recsys_opts_set(o, "model.time_bias", "on");
    recsys_opts_set_int(o, "model.max_len", MAX_LEN);
    recsys_opts_set_int(o, "model.dim", 8);
    recsys_opts_set_int(o, "model.heads", 2);
    if (recsys_model_new_blank(ctx, o, N_ITEMS, &f->m)) abort();
    /* HSTU's relative biases start near 0: make them matter, so that a
     * wrong position or time bucket moves the scores */
    int count = 0;
    recsys_model_tensor_count(f->m, &count);
    for (int i = 0; i < count; i++) {
        const char *name;
        int ndim;
        int64_t n = 0;
        if (recsys_model_tensor_info(f->m, i, &name, &ndim, NULL, &n)) abort();
        if (strncmp(name, "rab_", 4)) continue;
        float *v = malloc(sizeof(float) * (size_t)n);
        for (int64_t j = 0; v && j < n; j++) v[j] = 0.5f * sinf(0.37f * (float)j + (float)i);
        if (!v || recsys_model_set_tensor(ctx, f->m, name, v, (size_t)n)) abort();
        free(v);
    }
    if (recsys_session_new(ctx, f->m, &f->s)) abort();
    recsys_opts_free(o);
}

static void check_same(recsys_session *s, recsys_user_state *u)
{
    float a[N_ITEMS + 1], b[N_ITEMS + 1];
    recsys_request q = RECSYS_REQUEST_INIT;
    if (recsys_session_score_state(s, u, &q, a, N_ITEMS + 1)) abort();
    if (recsys_user_state_request(u, &q)) abort();
    if (recsys_session_score_request(s, &q, b, N_ITEMS + 1)) abort();
    for (int i = 1; i <= N_ITEMS; i++)
        if (!(fabsf(a[i] - b[i]) <= 1e-4f * (1.0f + fabsf(b[i])))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fixture fx[2];
    recsys_ctx *ctx = fuzz_ctx();
    if (!fx[0].m) {
        make(ctx, "hstu", &fx[0]);
        make(ctx, "sasrec", &fx[1]);
    }
    if (size < 1 || size > 4096) return 0;
    fixture *f = &fx[data[0] & 1];
    recsys_user_state *u;
    if (recsys_user_state_new(f->m, &u)) abort();
    int64_t t = 0;
    for (size_t i = 1; i + 1 < size; i += 2) {
        uint8_t op = data[i], arg = data[i + 1];
        switch (op % 8) {
        case 0: /* re-rank */
            check_same(f->s, u);
            break;
        case 1: /* clear */
            if (recsys_user_state_clear(u)) abort();
            break;
        case 2: { /* an append that must fail: unknown item or time going back */
            recsys_status st = arg & 1 ? recsys_user_state_append(u, N_ITEMS + 1 + arg, t)
                                       : recsys_user_state_append(u, 0, t);
            if (st != RECSYS_E_NOT_FOUND) abort();
            recsys_request q = RECSYS_REQUEST_INIT;
            if (recsys_user_state_request(u, &q)) abort();
            int64_t last = q.n_history ? q.times[q.n_history - 1] : 0;
            if (last > 0 && recsys_user_state_append(u, 1, last - 1) != RECSYS_E_INVALID) abort();
            break;
        }
        default: /* an append: item 1..N_ITEMS, time steps of 0..2^(arg/32) x 1000 */
            t += (int64_t)(arg % 7) * ((int64_t)1 << (arg / 32)) * 1000;
            if (recsys_user_state_append(u, 1 + (int32_t)(op * 7 + arg) % N_ITEMS, t)) abort();
            break;
        }
    }
    check_same(f->s, u);
    recsys_user_state_free(u);
    return 0;
}
