/* recsys apen: Approximate Entropy of a dataset's user sequences
 * (docs/MODELS.md §5). A summary of the per-user values goes to stderr; stdout
 * gets exactly one JSON line. */
#include "cli.h"
#include "commands.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: recsys apen --data PATH [--m M] [--r R] [--window W|all]\n"
            "                   [--per-user FILE] [--threads N] [--config FILE]\n"
            "                   [--set key=value]...\n"
            "  --m       window length m (default 2)\n"
            "  --r       tolerance; r < 1 matches item ids exactly (default 0)\n"
            "  --window  last W items of each user, or all (default)\n"
            "  --per-user FILE  write user<TAB>apen per user (nan: too short)\n");
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile of sorted values, linear between order statistics. */
static double quantile(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n) return v[n - 1];
    return v[lo] + (pos - (double)lo) * (v[lo + 1] - v[lo]);
}

/* Returns 0, or an errno value (the reason) when the file cannot be written. */
static int write_per_user(const char *path, const recsys_dataset *ds, const double *v,
                          int64_t n_users)
{
    errno = 0;
    FILE *f = fopen(path, "w");
    if (!f) return errno ? errno : EIO;
    int err = 0;
    for (int64_t u = 0; u < n_users && !err; u++) {
        const char *name = NULL;
        if (recsys_dataset_user_name(ds, u, &name) || !name) name = "?";
        int w = isnan(v[u]) ? fprintf(f, "%s\tnan\n", name)
                            : fprintf(f, "%s\t%.10f\n", name, v[u]);
        if (w < 0) err = errno ? errno : EIO;
    }
    if (fflush(f) != 0 && !err) err = errno ? errno : EIO;
    if (ferror(f) && !err) err = EIO;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    return err;
}

int cmd_apen(int argc, char **argv)
{
    const char *config = NULL, *per_user_path = NULL;
    recsys_ctx *ctx = NULL;
    recsys_opts *opts = NULL;
    recsys_dataset *ds = NULL;
    recsys_apen *apen = NULL;
    double *values = NULL, *sorted = NULL;
    int threads = 0, have_data = 0;
    recsys_status st;
    int rc = 1;
    if (recsys_ctx_new(&ctx) || recsys_opts_new(ctx, &opts)) {
        fprintf(stderr, "recsys apen: out of memory\n");
        goto done;
    }
    if (cli_load_config("apen", ctx, opts, argc, argv, &config)) goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *key = NULL, *val;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); rc = 0; goto done; }
        if (i + 1 >= argc) {
            fprintf(stderr, "recsys apen: %s needs a value\n", a);
            usage();
            rc = 2;
            goto done;
        }
        val = argv[++i];
        if (!strcmp(a, "--config")) continue;
        if (!strcmp(a, "--per-user")) { per_user_path = val; continue; }
        if (!strcmp(a, "--threads")) {
            char *end;
            long t = strtol(val, &end, 10);
            if (*end || t < 0 || t > 4096) {
                fprintf(stderr, "recsys apen: --threads wants a count >= 0, got '%s'\n", val);
                rc = 2;
                goto done;
            }
            threads = (int)t;
            continue;
        }
        if (!strcmp(a, "--set")) {
            if ((st = cli_set_kv(opts, val))) {
                rc = cli_fail("apen", ctx, st, "bad --set");
                goto done;
            }
            continue;
        }
        if (!strcmp(a, "--data")) { key = "data.path"; have_data = 1; }
        else if (!strcmp(a, "--m")) key = "apen.m";
        else if (!strcmp(a, "--r")) key = "apen.r";
        else if (!strcmp(a, "--window")) {
            key = "apen.window";
            if (!strcmp(val, "all")) val = "0";
        } else {
            fprintf(stderr, "recsys apen: unknown option '%s'\n", a);
            usage();
            rc = 2;
            goto done;
        }
        if ((st = recsys_opts_set(opts, key, val))) {
            rc = cli_fail("apen", ctx, st, a);
            goto done;
        }
    }
    if (!have_data && !config) {
        fprintf(stderr, "recsys apen: --data PATH is required\n");
        usage();
        rc = 2;
        goto done;
    }
    if ((st = recsys_ctx_set_threads(ctx, threads))) { rc = cli_fail("apen", ctx, st, NULL); goto done; }
    const char *path;
    int64_t m, window;
    double r;
    recsys_opts_get(opts, "data.path", &path);
    recsys_opts_get_int(opts, "apen.m", &m);
    recsys_opts_get_float(opts, "apen.r", &r);
    recsys_opts_get_int(opts, "apen.window", &window);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = recsys_dataset_open(ctx, path, opts, &ds))) {
        rc = cli_fail("apen", ctx, st, "cannot load the data");
        goto done;
    }
    double load_seconds = seconds_since(&t0);
    double users_total = 0, events = 0;
    recsys_dataset_stat(ds, RECSYS_STAT_USERS, &users_total);
    recsys_dataset_stat(ds, RECSYS_STAT_EVENTS, &events);
    int64_t n_users = (int64_t)users_total;
    values = malloc(((size_t)n_users + 1) * sizeof *values);
    sorted = malloc(((size_t)n_users + 1) * sizeof *sorted);
    if (!values || !sorted) {
        fprintf(stderr, "recsys apen: out of memory\n");
        goto done;
    }
    if ((st = recsys_apen_new(ctx, opts, &apen))) { rc = cli_fail("apen", ctx, st, NULL); goto done; }
    double mean = NAN;
    int64_t used = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = recsys_apen_dataset(apen, ds, &mean, values, (size_t)n_users, &used);
    double apen_seconds = seconds_since(&t0);
    if (st) { rc = cli_fail("apen", ctx, st, "cannot compute ApEn"); goto done; }
    int werr = per_user_path ? write_per_user(per_user_path, ds, values, n_users) : 0;
    if (werr) {
        fprintf(stderr, "recsys apen: cannot write %s: %s\n", per_user_path, strerror(werr));
        goto done;
    }

    size_t k = 0;
    double var = 0;
    for (int64_t u = 0; u < n_users; u++)
        if (!isnan(values[u])) {
            sorted[k++] = values[u];
            var += (values[u] - mean) * (values[u] - mean);
        }
    qsort(sorted, k, sizeof *sorted, cmp_double);
    double sd = sqrt(var / (double)k);
    double q[5] = {sorted[0], quantile(sorted, k, 0.25), quantile(sorted, k, 0.5),
                   quantile(sorted, k, 0.75), sorted[k - 1]};
    char wtext[32];
    if (window > 0) snprintf(wtext, sizeof wtext, "last %lld items", (long long)window);
    else snprintf(wtext, sizeof wtext, "whole history");
    fprintf(stderr,
            "ApEn of %s: m=%lld r=%g, %s, %lld of %lld users (%.0f events), "
            "threads %d, %.3f s (load %.3f s)\n"
            "  mean %.6f  std %.6f\n"
            "  min %.6f  p25 %.6f  median %.6f  p75 %.6f  max %.6f\n",
            path, (long long)m, r, wtext, (long long)used, (long long)n_users, events,
            recsys_ctx_threads(ctx), apen_seconds, load_seconds, mean, sd, q[0], q[1], q[2],
            q[3], q[4]);
    printf("{\"data\": ");
    cli_json_string(stdout, path);
    printf(", \"apen\": %.10f, \"m\": %lld, \"r\": %.17g, \"window\": %lld, \"users\": %lld, "
           "\"users_total\": %lld, \"events\": %.0f, \"std\": %.10f, \"min\": %.10f, "
           "\"p25\": %.10f, \"median\": %.10f, \"p75\": %.10f, \"max\": %.10f, "
           "\"threads\": %d, \"seconds\": %.6f, \"load_seconds\": %.3f}\n",
           mean, (long long)m, r, (long long)window, (long long)used, (long long)n_users, events,
           sd, q[0], q[1], q[2], q[3], q[4], recsys_ctx_threads(ctx), apen_seconds,
           load_seconds);
    rc = 0;
done:
    free(values);
    free(sorted);
    recsys_apen_free(apen);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return rc;
}
