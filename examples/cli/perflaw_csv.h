/* The runs CSV of recsys perflaw. */
#ifndef RECSYS_PERFLAW_CSV_H
#define RECSYS_PERFLAW_CSV_H

#include <stddef.h>

typedef struct run {
    double layers, dim, data, metric;
    long line; /* line of the CSV file it came from */
} run;

typedef struct runs {
    run *v;
    size_t n, cap;
    size_t skipped; /* rows without a metric value */
} runs;

/* Read runs from path (a header row naming layers, dim, the metric and data
 * or events+apen); returns 0, or prints "recsys perflaw: ..." and returns 1. */
int read_runs(const char *path, const char *metric, runs *out);

#endif
