/* LoRA through the projection seam (hook.h). */
#include "adapters/hook.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Runs of batch rows with the same vector and gradient, adapter-less and
 * empty rows left out: over the packed rows (row b at base[b], len[b] rows)
 * or, last != 0, over one row per batch row (row b at b). */
static void build_rows(const rs_lora_hook *h, const rs_ws_common *w, int last, rs_lora_rows *o)
{
    int ns = 0;
    for (int b = 0; b < w->B; b++) {
        const float *v = h->vec[b];
        if (!v || w->len[b] == 0) continue;
        int row0 = last ? b : w->base[b], n = last ? 1 : w->len[b];
        rs_lora_seg *prev = ns ? &o->seg[ns - 1] : NULL;
        if (prev && prev->A == v && prev->dA == h->grad[b] && prev->row0 + prev->n == row0) {
            prev->n += n;
            continue;
        }
        rs_lora_seg s = {row0, n, v, NULL, h->grad[b], NULL};
        o->seg[ns++] = s;
    }
    for (int i = 0; i < ns; i++) {
        o->sv[i] = o->seg[i].A;
        o->sg[i] = o->seg[i].dA;
    }
    o->ns = ns;
    o->n = last ? w->B : w->n;
}

/* h.begin: the hook object is the caller's and mutable; only the batch
 * sees it as const. */
static void hook_begin(const rs_proj_hook *ph, const rs_ws_common *w)
{
    rs_lora_hook *h = (rs_lora_hook *)(void *)(uintptr_t)(const void *)ph;
    h->packed.ns = h->last.ns = 0;
    if (!w || w->B > h->cap_B || (size_t)w->n > h->cap_R) return;
    build_rows(h, w, 0, &h->packed);
    build_rows(h, w, 1, &h->last);
}

/* Point the segments at site s's A and B (and gradients). */
static void at_site(const rs_lora_hook *h, const rs_lora_rows *o, const rs_lora_site *s)
{
    size_t rin = (size_t)h->a->rank * (size_t)s->in;
    for (int i = 0; i < o->ns; i++) {
        rs_lora_seg *g = &o->seg[i];
        g->A = o->sv[i] + s->off;
        g->B = g->A + rin;
        g->dA = o->sg[i] ? o->sg[i] + s->off : NULL;
        g->dB = o->sg[i] ? g->dA + rin : NULL;
    }
}

/* Sites of block k whose target rows lie in p's rows; calls fn for each. */
#define FOR_SITES(h, r, p, k, body)                                                        \
    do {                                                                                    \
        const char *tn_ = (r)->tab->name[(p)->w];                                           \
        for (int si = 0; si < (h)->a->n_sites; si++) {                                      \
            const rs_lora_site *s = &(h)->a->sites[si];                                     \
            if (s->block != (k) || strcmp((h)->tensor[si], tn_)) continue;                  \
            int col = (h)->row0[si] - (p)->row0;                                            \
            if (col < 0 || col + s->out > (p)->out || s->in != (p)->in) continue;           \
            body                                                                            \
        }                                                                                   \
    } while (0)

/* The segments of a projection over n rows of r's layout (NULL: nothing to
 * adapt, or n is not the layout's row count). */
static const rs_lora_rows *rows_for(const rs_lora_hook *h, const rs_model_run *r, int n)
{
    const rs_lora_rows *o = r->last_rows ? &h->last : &h->packed;
    return o->ns && n == o->n ? o : NULL;
}

static void hook_fwd(const rs_proj_hook *ph, const rs_model_run *r, const rs_proj *p, int k,
                     int n, const float *x, int ldx, float *y, int ldy)
{
    const rs_lora_hook *h = (const rs_lora_hook *)(const void *)ph;
    const rs_lora_rows *o = rows_for(h, r, n);
    if (!o) return;
    int rk = h->a->rank;
    FOR_SITES(h, r, p, k, {
        at_site(h, o, s);
        rs_lora_fwd(r->ctx, o->ns, o->seg, s->in, s->out, rk, h->a->scale, x, ldx,
                    h->t + (size_t)si * h->cap_R * rk, y + col, ldy);
    });
}

static void hook_bwd(const rs_proj_hook *ph, const rs_model_run *r, const rs_proj *p, int k,
                     int n, const float *x, int ldx, const float *dy, int lddy, float *dx,
                     int lddx)
{
    const rs_lora_hook *h = (const rs_lora_hook *)(const void *)ph;
    const rs_lora_rows *o = rows_for(h, r, n);
    if (!o) return;
    int rk = h->a->rank;
    FOR_SITES(h, r, p, k, {
        at_site(h, o, s);
        rs_lora_bwd(r->ctx, o->ns, o->seg, s->in, s->out, rk, h->a->scale, x, ldx,
                    h->t + (size_t)si * h->cap_R * rk, dy + col, lddy, h->u, dx, lddx);
    });
}

static int rows_alloc(rs_lora_rows *o, int cap_B)
{
    o->seg = calloc((size_t)cap_B, sizeof *o->seg);
    o->sv = calloc((size_t)cap_B, sizeof *o->sv);
    o->sg = calloc((size_t)cap_B, sizeof *o->sg);
    return o->seg && o->sv && o->sg;
}

static void rows_free(rs_lora_rows *o)
{
    free(o->seg);
    free(o->sv);
    free(o->sg);
}

recsys_status rs_lora_hook_init(recsys_ctx *ctx, rs_lora_hook *h, const recsys_adapter *shape,
                                int cap_B)
{
    memset(h, 0, sizeof *h);
    if (!shape || cap_B < 1)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter hook: no shape or capacity");
    const rs_model_config *c = &shape->model->cfg;
    h->h.begin = hook_begin;
    h->h.fwd = hook_fwd;
    h->h.bwd = hook_bwd;
    h->a = shape;
    h->cap_B = cap_B;
    h->cap_R = (size_t)cap_B * (size_t)c->max_len;
    size_t rk = (size_t)shape->rank, nsites = (size_t)(shape->n_sites > 0 ? shape->n_sites : 1);
    h->vec = calloc((size_t)cap_B, sizeof *h->vec);
    h->grad = calloc((size_t)cap_B, sizeof *h->grad);
    int ok = rows_alloc(&h->packed, cap_B) & rows_alloc(&h->last, cap_B);
    h->t = rs_malloc(sizeof(float) * nsites * h->cap_R * rk);
    h->u = rs_malloc(sizeof(float) * h->cap_R * rk);
    if (!h->vec || !h->grad || !ok || !h->t || !h->u) {
        rs_lora_hook_release(h);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter hook: out of memory");
    }
    for (int si = 0; si < shape->n_sites; si++) {
        int in, out;
        rs_target_geometry(c, shape->sites[si].target, &h->tensor[si], &h->row0[si], &in, &out);
    }
    return RECSYS_OK;
}

void rs_lora_hook_release(rs_lora_hook *h)
{
    if (!h) return;
    free(h->vec);
    free(h->grad);
    rows_free(&h->packed);
    rows_free(&h->last);
    rs_free(h->t);
    rs_free(h->u);
    memset(h, 0, sizeof *h);
}

void rs_lora_hook_set_all(rs_lora_hook *h, const float *v, float *g)
{
    for (int b = 0; b < h->cap_B; b++) {
        h->vec[b] = v;
        h->grad[b] = g;
    }
}
