/* recsys perflaw fit RUNS.csv: fit the Performance Law (docs/MODELS.md §5) to
 * sweep results, print the parameters, predictions and held-out errors, and
 * optionally draw an SVG. stdout ends with one JSON line. */
#include "cli.h"
#include "commands.h"
#include "perflaw_csv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *PARAM_NAMES[RECSYS_PERFLAW_N_PARAMS] = {"w1", "w2", "w3", "w4", "w5", "b"};

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys perflaw fit RUNS.csv [--metric NDCG@10|HR@10] [--predict N,h,D]...\n"
            "                          [--holdout FILE] [--plot OUT.svg]\n"
            "RUNS.csv has a header row with the columns layers, dim, the metric, and\n"
            "either data (the D term) or events and apen (then D = events * apen / 1e6).\n");
}


/* ------------------------------------------------------------------ JSON */

static void json_num(double v)
{
    if (isfinite(v)) printf("%.10g", v);
    else printf("null");
}

/* ------------------------------------------------------------------ SVG */

/* Distinct values of one field (0 layers, 1 dim, 2 data), sorted. */
static size_t distinct(const runs *a, const runs *b, int field, double *out, size_t max)
{
    size_t k = 0;
    for (int s = 0; s < 2; s++) {
        const runs *rs = s ? b : a;
        for (size_t i = 0; rs && i < rs->n; i++) {
            double v = field == 0 ? rs->v[i].layers : field == 1 ? rs->v[i].dim : rs->v[i].data;
            size_t j = 0;
            while (j < k && out[j] != v) j++;
            if (j == k && k < max) out[k++] = v;
        }
    }
    for (size_t i = 1; i < k; i++) /* insertion sort: few values */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            double t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return k;
}

static size_t index_of(const double *v, size_t n, double x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x) return i;
    return 0;
}

#define MAXV 64
static const char *COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                               "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};
static const char *DASHES[] = {"none", "6,3", "2,3", "8,3,2,3", "12,4"};

/* Metric against layers; one colour per hidden size, one dash per data value:
 * observed runs filled, held-out runs hollow with a line to their prediction. */
static int write_svg(const char *path, const recsys_perflaw *law, const runs *obs,
                     const runs *hold, const char *metric)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    double L[MAXV], H[MAXV], D[MAXV];
    size_t nl = distinct(obs, hold, 0, L, MAXV), nh = distinct(obs, hold, 1, H, MAXV),
           nd = distinct(obs, hold, 2, D, MAXV);
    const double W = 760, Ht = 480, ml = 70, mr = 200, mt = 30, mb = 50;
    double x0 = L[0], x1 = L[nl - 1], y0 = INFINITY, y1 = -INFINITY;
    if (x1 == x0) { x0 -= 1; x1 += 1; }
    for (int s = 0; s < 2; s++) {
        const runs *rs = s ? hold : obs;
        for (size_t i = 0; rs && i < rs->n; i++) {
            double pred = 0;
            recsys_perflaw_predict(law, rs->v[i].layers, rs->v[i].dim, rs->v[i].data, &pred);
            y0 = fmin(y0, fmin(rs->v[i].metric, pred));
            y1 = fmax(y1, fmax(rs->v[i].metric, pred));
        }
    }
    double pad = (y1 - y0) * 0.08 + 1e-9;
    y0 -= pad;
    y1 += pad;
#define SX(x) (ml + ((x) - x0) / (x1 - x0) * (W - ml - mr))
#define SY(y) (Ht - mb - ((y) - y0) / (y1 - y0) * (Ht - mt - mb))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, Ht);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n",
            ml, mt, W - ml - mr, Ht - mt - mb);
    for (size_t i = 0; i < nl; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", SX(L[i]),
                Ht - mb + 16, L[i]);
    for (int i = 0; i <= 5; i++) {
        double y = y0 + (y1 - y0) * i / 5.0;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4f</text>\n",
                ml, W - mr, SY(y), SY(y), ml - 6, SY(y) + 4, y);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">layers N</text>\n",
            (ml + W - mr) / 2, Ht - 12);
    fprintf(f, "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">",
            (mt + Ht - mb) / 2, (mt + Ht - mb) / 2);
    for (const char *c = metric; *c; c++) /* XML text */
        fputs(*c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;" : (char[]){*c, 0}, f);
    fprintf(f, "</text>\n");
    for (size_t a = 0; a < nh; a++)
        for (size_t b = 0; b < nd; b++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-dasharray=\"%s\" points=\"",
                    COLORS[a % 8], DASHES[b % 5]);
            for (int s = 0; s <= 80; s++) {
                double x = x0 + (x1 - x0) * s / 80.0, y = 0;
                if (x <= 0) continue;
                recsys_perflaw_predict(law, x, H[a], D[b], &y);
                fprintf(f, "%s%.1f,%.1f", s ? " " : "", SX(x), SY(y));
            }
            fprintf(f, "\"/>\n");
        }
    for (int s = 0; s < 2; s++) {
        const runs *rs = s ? hold : obs;
        for (size_t i = 0; rs && i < rs->n; i++) {
            const run *r = &rs->v[i];
            const char *c = COLORS[index_of(H, nh, r->dim) % 8];
            if (!s) {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                        SX(r->layers), SY(r->metric), c);
                continue;
            }
            double pred = 0;
            recsys_perflaw_predict(law, r->layers, r->dim, r->data, &pred);
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n"
                       "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"white\" "
                       "stroke=\"%s\" stroke-width=\"2\"/>\n",
                    SX(r->layers), SX(r->layers), SY(r->metric), SY(pred), c,
                    SX(r->layers) - 4, SY(r->metric) - 4, c);
        }
    }
    double ly = mt + 10;
    for (size_t a = 0; a < nh; a++, ly += 18)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"3\"/><text x=\"%.1f\" y=\"%.1f\">dim %g</text>\n",
                W - mr + 14, W - mr + 40, ly, ly, COLORS[a % 8], W - mr + 46, ly + 4, H[a]);
    for (size_t b = 0; b < nd; b++, ly += 18)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" "
                   "stroke-dasharray=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">D %.4g</text>\n",
                W - mr + 14, W - mr + 40, ly, ly, DASHES[b % 5], W - mr + 46, ly + 4, D[b]);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">filled: fitted runs</text>\n", W - mr + 14, ly + 8);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">hollow: held out</text>\n", W - mr + 14, ly + 26);
    fprintf(f, "</svg>\n");
#undef SX
#undef SY
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ command */

#define MAX_PREDICT 64

int cmd_perflaw(int argc, char **argv)
{
    const char *csv = NULL, *metric = "NDCG@10", *holdout = NULL, *plot = NULL;
    double pred_in[MAX_PREDICT][3];
    int n_pred = 0, rc = 1;
    runs obs = {0}, hold = {0};
    recsys_ctx *ctx = NULL;
    recsys_perflaw *law = NULL;
    recsys_status st;
    int i = 1;
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage();
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "fit") != 0) {
        fprintf(stderr, "recsys perflaw: expected 'fit RUNS.csv'\n");
        usage();
        return 2;
    }
    for (i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (a[0] != '-' || a[1] == 0) {
            if (csv) {
                fprintf(stderr, "recsys perflaw: more than one runs file ('%s')\n", a);
                return 2;
            }
            csv = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "recsys perflaw: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--metric")) metric = v;
        else if (!strcmp(a, "--holdout")) holdout = v;
        else if (!strcmp(a, "--plot")) plot = v;
        else if (!strcmp(a, "--predict")) {
            char tail;
            double *p = pred_in[n_pred];
            if (n_pred == MAX_PREDICT ||
                sscanf(v, "%lf,%lf,%lf%c", &p[0], &p[1], &p[2], &tail) != 3) {
                fprintf(stderr, "recsys perflaw: --predict wants N,h,D (e.g. 8,50,1e6), got '%s'\n", v);
                return 2;
            }
            n_pred++;
        } else {
            fprintf(stderr, "recsys perflaw: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (!csv) {
        fprintf(stderr, "recsys perflaw: the runs file is missing\n");
        usage();
        return 2;
    }
    if (read_runs(csv, metric, &obs)) goto done;
    if (holdout && read_runs(holdout, metric, &hold)) goto done;
    if (obs.skipped)
        fprintf(stderr, "recsys perflaw: skipped %zu rows of %s without a %s value\n", obs.skipped,
                csv, metric);
    if (recsys_ctx_new(&ctx) || recsys_perflaw_new(ctx, &law)) {
        fprintf(stderr, "recsys perflaw: out of memory\n");
        goto done;
    }
    for (size_t k = 0; k < obs.n; k++) {
        const run *r = &obs.v[k];
        if ((st = recsys_perflaw_add(law, r->layers, r->dim, r->data, r->metric))) {
            fprintf(stderr, "recsys perflaw: %s:%ld: %s\n", csv, r->line, recsys_ctx_errmsg(ctx));
            goto done;
        }
    }
    if ((st = recsys_perflaw_fit(law))) {
        rc = cli_fail("perflaw", ctx, st, "cannot fit");
        goto done;
    }
    double params[RECSYS_PERFLAW_N_PARAMS], se[RECSYS_PERFLAW_N_PARAMS], r2;
    recsys_perflaw_params(law, params, se, &r2);

    printf("Performance Law fit of %s on %zu runs (%s):\n", metric, obs.n, csv);
    printf("  P = w1*(-1/(2N^w3) - w3 ln N) + w2*(-1/(2h^w4) - w4 ln h) + (-1/(2D^w5) - w5 ln D) + b\n");
    for (int j = 0; j < RECSYS_PERFLAW_N_PARAMS; j++)
        printf("  %-3s = %12.6g  +- %.3g\n", PARAM_NAMES[j], params[j], se[j]);
    printf("  R^2 = %.6f\n", r2);
    double pred_out[MAX_PREDICT];
    for (int k = 0; k < n_pred; k++) {
        if ((st = recsys_perflaw_predict(law, pred_in[k][0], pred_in[k][1], pred_in[k][2],
                                         &pred_out[k]))) {
            rc = cli_fail("perflaw", ctx, st, "cannot predict");
            goto done;
        }
        printf("  predict N=%g h=%g D=%g: %s %.6f\n", pred_in[k][0], pred_in[k][1],
               pred_in[k][2], metric, pred_out[k]);
    }
    double mape = 0, mae = 0;
    for (size_t k = 0; k < hold.n; k++) {
        const run *r = &hold.v[k];
        double p = 0;
        if ((st = recsys_perflaw_predict(law, r->layers, r->dim, r->data, &p))) {
            rc = cli_fail("perflaw", ctx, st, "cannot predict a held-out run");
            goto done;
        }
        double err = fabs(p - r->metric) / fabs(r->metric);
        mape += err / (double)hold.n;
        mae += fabs(p - r->metric) / (double)hold.n;
        printf("  held out N=%g h=%g D=%g: observed %.6f predicted %.6f (%.2f%%)\n", r->layers,
               r->dim, r->data, r->metric, p, 100 * err);
    }
    if (hold.n)
        printf("  held-out mean absolute error: %.4f (mean relative error %.2f%%)\n", mae,
               100 * mape);
    /* best size among the observed layer counts and hidden sizes, at the largest D */
    double Ls[MAXV], Hs[MAXV], Ds[MAXV], bl = 0, bh = 0, bm = 0;
    size_t nl = distinct(&obs, NULL, 0, Ls, MAXV), nh = distinct(&obs, NULL, 1, Hs, MAXV),
           nd = distinct(&obs, NULL, 2, Ds, MAXV);
    recsys_perflaw_best_size(law, Ds[nd - 1], Ls, nl, Hs, nh, &bl, &bh, &bm);
    printf("  best observed size at D=%g: N=%g h=%g (predicted %.6f)\n", Ds[nd - 1], bl, bh, bm);
    if (plot) {
        if (write_svg(plot, law, &obs, &hold, metric)) {
            fprintf(stderr, "recsys perflaw: cannot write %s\n", plot);
            goto done;
        }
        printf("  plot: %s\n", plot);
    }

    printf("{\"metric\": ");
    cli_json_string(stdout, metric);
    printf(", \"n\": %zu, \"params\": {", obs.n);
    for (int j = 0; j < RECSYS_PERFLAW_N_PARAMS; j++) {
        printf("%s\"%s\": ", j ? ", " : "", PARAM_NAMES[j]);
        json_num(params[j]);
    }
    printf("}, \"stderr\": {");
    for (int j = 0; j < RECSYS_PERFLAW_N_PARAMS; j++) {
        printf("%s\"%s\": ", j ? ", " : "", PARAM_NAMES[j]);
        json_num(se[j]);
    }
    printf("}, \"r2\": ");
    json_num(r2);
    printf(", \"predictions\": [");
    for (int k = 0; k < n_pred; k++)
        printf("%s{\"layers\": %.10g, \"dim\": %.10g, \"data\": %.10g, \"predicted\": %.10g}",
               k ? ", " : "", pred_in[k][0], pred_in[k][1], pred_in[k][2], pred_out[k]);
    printf("], \"holdout\": [");
    for (size_t k = 0; k < hold.n; k++) {
        const run *r = &hold.v[k];
        double p = 0;
        recsys_perflaw_predict(law, r->layers, r->dim, r->data, &p);
        printf("%s{\"layers\": %.10g, \"dim\": %.10g, \"data\": %.10g, \"observed\": %.10g, "
               "\"predicted\": %.10g}",
               k ? ", " : "", r->layers, r->dim, r->data, r->metric, p);
    }
    printf("], \"holdout_mae\": ");
    json_num(hold.n ? mae : NAN);
    printf(", \"holdout_mape\": ");
    json_num(hold.n ? mape : NAN);
    printf(", \"best\": {\"layers\": %.10g, \"dim\": %.10g, \"data\": %.10g, \"predicted\": %.10g}}\n",
           bl, bh, Ds[nd - 1], bm);
    rc = 0;
done:
    recsys_perflaw_free(law);
    recsys_ctx_free(ctx);
    free(obs.v);
    free(hold.v);
    return rc;
}
