/* LoRA through the projection seam (hook.h). */
#include "adapters/hook.h"

#include <stdlib.h>
#include <string.h>

/* The segments of the current batch: runs of batch rows with the same vector
 * and gradient, adapter-less rows left out. Returns the count. */
static int build_segments(const rs_lora_hook *h, const rs_ws_common *w)
{
    int ns = 0;
    for (int b = 0; b < w->B; b++) {
        const float *v = h->vec[b];
        if (!v || w->len[b] == 0) continue;
        rs_lora_seg *last = ns ? &h->seg[ns - 1] : NULL;
        if (last && last->A == v && last->dA == h->grad[b] &&
            last->row0 + last->n == w->base[b]) {
            last->n += w->len[b];
            continue;
        }
        rs_lora_seg s = {w->base[b], w->len[b], v, NULL, h->grad[b], NULL};
        h->seg[ns++] = s;
    }
    return ns;
}

/* Point the segments at site s's A and B (and gradients). */
static void at_site(const rs_lora_hook *h, int ns, const rs_lora_site *s, const float **vbase,
                    float **gbase)
{
    size_t rin = (size_t)h->a->rank * (size_t)s->in;
    for (int i = 0; i < ns; i++) {
        rs_lora_seg *g = &h->seg[i];
        g->A = vbase[i] + s->off;
        g->B = g->A + rin;
        g->dA = gbase[i] ? gbase[i] + s->off : NULL;
        g->dB = gbase[i] ? g->dA + rin : NULL;
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

/* The row segments of this call (0: nothing to adapt), with the per-segment
 * A / dA pointer arrays that at_site re-points for each site. */
static int begin_call(const rs_lora_hook *h, const rs_ws_common *w, int n)
{
    if (!w || n != w->n || (size_t)n > h->cap_R || w->B > h->cap_B) return 0;
    int ns = build_segments(h, w);
    for (int i = 0; i < ns; i++) {
        h->sv[i] = h->seg[i].A;
        h->sg[i] = h->seg[i].dA;
    }
    return ns;
}

static void hook_fwd(const rs_proj_hook *ph, const rs_model_run *r, const rs_proj *p, int k,
                     int n, const float *x, int ldx, float *y, int ldy)
{
    const rs_lora_hook *h = (const rs_lora_hook *)(const void *)ph;
    int ns = begin_call(h, r->w, n);
    if (!ns) return;
    const float **vb = h->sv;
    float **gb = h->sg;
    int rk = h->a->rank;
    FOR_SITES(h, r, p, k, {
        at_site(h, ns, s, vb, gb);
        rs_lora_fwd(r->ctx, ns, h->seg, s->in, s->out, rk, h->a->scale, x, ldx,
                    h->t + (size_t)si * h->cap_R * rk, y + col, ldy);
    });
}

static void hook_bwd(const rs_proj_hook *ph, const rs_model_run *r, const rs_proj *p, int k,
                     int n, const float *x, int ldx, const float *dy, int lddy, float *dx,
                     int lddx)
{
    const rs_lora_hook *h = (const rs_lora_hook *)(const void *)ph;
    int ns = begin_call(h, r->w, n);
    if (!ns) return;
    const float **vb = h->sv;
    float **gb = h->sg;
    int rk = h->a->rank;
    FOR_SITES(h, r, p, k, {
        at_site(h, ns, s, vb, gb);
        rs_lora_bwd(r->ctx, ns, h->seg, s->in, s->out, rk, h->a->scale, x, ldx,
                    h->t + (size_t)si * h->cap_R * rk, dy + col, lddy, h->u, dx, lddx);
    });
}

recsys_status rs_lora_hook_init(recsys_ctx *ctx, rs_lora_hook *h, const recsys_adapter *shape,
                                int cap_B)
{
    memset(h, 0, sizeof *h);
    if (!shape || cap_B < 1)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter hook: no shape or capacity");
    const rs_model_config *c = &shape->model->cfg;
    h->h.fwd = hook_fwd;
    h->h.bwd = hook_bwd;
    h->a = shape;
    h->cap_B = cap_B;
    h->cap_R = (size_t)cap_B * (size_t)c->max_len;
    size_t rk = (size_t)shape->rank, nsites = (size_t)(shape->n_sites > 0 ? shape->n_sites : 1);
    h->vec = calloc((size_t)cap_B, sizeof *h->vec);
    h->grad = calloc((size_t)cap_B, sizeof *h->grad);
    h->seg = calloc((size_t)cap_B, sizeof *h->seg);
    h->sv = calloc((size_t)cap_B, sizeof *h->sv);
    h->sg = calloc((size_t)cap_B, sizeof *h->sg);
    h->t = rs_malloc(sizeof(float) * nsites * h->cap_R * rk);
    h->u = rs_malloc(sizeof(float) * h->cap_R * rk);
    if (!h->vec || !h->grad || !h->seg || !h->sv || !h->sg || !h->t || !h->u) {
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
    free(h->seg);
    free(h->sv);
    free(h->sg);
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
