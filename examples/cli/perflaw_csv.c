/* Reading the runs CSV of recsys perflaw (separate so that the fuzz
 * harness links it): regular files only, lines of at most 64 KiB. */
#include "perflaw_csv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINE (64 * 1024)

/* fopen for reading, refusing FIFOs, devices and directories (a FIFO would
 * block, /dev/zero would never end). Prints the reason. */
static FILE *open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fprintf(stderr, "recsys perflaw: cannot open %s: %s\n", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        fprintf(stderr, "recsys perflaw: %s is not a regular file\n", path);
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "r");
    if (!f) {
        fprintf(stderr, "recsys perflaw: cannot open %s: %s\n", path, strerror(errno));
        close(fd);
    }
    return f;
}

/* One line (with its '\n') into *buf, growing it up to MAX_LINE. Returns
 * its length, 0 at the end, -1 on a read error, -2 for a line too long, -3
 * for a NUL byte. */
static int read_line(FILE *f, char **buf, size_t *cap)
{
    size_t n = 0;
    for (;;) {
        int c = getc(f);
        if (c == EOF) {
            if (ferror(f)) return -1;
            break;
        }
        if (c == 0) return -3;
        if (n + 2 > *cap) {
            if (*cap >= MAX_LINE) return -2;
            size_t nc = *cap ? 2 * *cap : 256;
            char *b = realloc(*buf, nc);
            if (!b) { errno = ENOMEM; return -1; }
            *buf = b;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (n) (*buf)[n] = 0;
    return (int)n;
}

/* ------------------------------------------------------------------ CSV */

/* Split line in place at commas; trims blanks and double quotes. */
static int split_csv(char *line, char **fields, int max)
{
    int n = 0;
    char *s = line;
    for (;;) {
        char *end = strchr(s, ',');
        if (end) *end = 0;
        while (*s == ' ' || *s == '\t' || *s == '"') s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '"' ||
                       s[len - 1] == '\r' || s[len - 1] == '\n'))
            s[--len] = 0;
        if (n < max) fields[n++] = s;
        if (!end) break;
        s = end + 1;
    }
    return n;
}

static int parse_num(const char *s, double *v)
{
    char *end;
    if (!*s) return 0;
    *v = strtod(s, &end);
    return *end == 0;
}

#define MAX_COLS 256

/* Read runs from path; returns 0 or prints "recsys perflaw: ..." and returns 1. */
int read_runs(const char *path, const char *metric, runs *out)
{
    FILE *f = open_regular(path);
    if (!f) return 1;
    char *line = NULL, *fields[MAX_COLS];
    size_t cap = 0;
    long line_no = 0;
    int col_layers = -1, col_dim = -1, col_data = -1, col_events = -1, col_apen = -1,
        col_metric = -1, n_cols = 0, rc = 1;
    int got;
    while ((got = read_line(f, &line, &cap)) > 0) {
        line_no++;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == 0 || *s == '\n' || *s == '\r' || *s == '#') continue;
        int n = split_csv(s, fields, MAX_COLS);
        if (n_cols == 0) { /* header */
            n_cols = n;
            for (int i = 0; i < n; i++) {
                if (!strcasecmp(fields[i], "layers")) col_layers = i;
                else if (!strcasecmp(fields[i], "dim")) col_dim = i;
                else if (!strcasecmp(fields[i], "data")) col_data = i;
                else if (!strcasecmp(fields[i], "events")) col_events = i;
                else if (!strcasecmp(fields[i], "apen")) col_apen = i;
                if (!strcasecmp(fields[i], metric)) col_metric = i;
            }
            const char *missing = col_layers < 0 ? "layers" : col_dim < 0 ? "dim"
                                  : col_metric < 0                     ? metric
                                  : (col_data < 0 && (col_events < 0 || col_apen < 0))
                                      ? "data (or events and apen)"
                                      : NULL;
            if (missing) {
                fprintf(stderr, "recsys perflaw: %s:%ld: the header has no column '%s'\n", path,
                        line_no, missing);
                goto done;
            }
            continue;
        }
        if (n != n_cols) {
            fprintf(stderr, "recsys perflaw: %s:%ld: %d fields, the header has %d\n", path,
                    line_no, n, n_cols);
            goto done;
        }
        run r;
        r.line = line_no;
        double ev = 0, ap = 0;
        if (!parse_num(fields[col_metric], &r.metric) || !isfinite(r.metric)) {
            out->skipped++; /* a run that failed or is still going */
            continue;
        }
        int ok = parse_num(fields[col_layers], &r.layers) && parse_num(fields[col_dim], &r.dim);
        if (ok && col_data >= 0) ok = parse_num(fields[col_data], &r.data);
        else if (ok) {
            ok = parse_num(fields[col_events], &ev) && parse_num(fields[col_apen], &ap);
            r.data = ev * ap / 1e6; /* quality-weighted tokens, in millions */
        }
        if (!ok) {
            fprintf(stderr, "recsys perflaw: %s:%ld: layers, dim and data must be numbers\n",
                    path, line_no);
            goto done;
        }
        if (out->n == out->cap) {
            size_t nc = out->cap ? 2 * out->cap : 32;
            run *v = realloc(out->v, nc * sizeof *v);
            if (!v) {
                fprintf(stderr, "recsys perflaw: out of memory\n");
                goto done;
            }
            out->v = v;
            out->cap = nc;
        }
        out->v[out->n++] = r;
    }
    if (got < 0) {
        fprintf(stderr, "recsys perflaw: %s:%ld: %s\n", path, line_no + 1,
                got == -2 ? "line longer than 64 KiB: not a runs file?"
                          : got == -3 ? "NUL byte: not a text file" : strerror(errno));
        goto done;
    }
    if (n_cols == 0) {
        fprintf(stderr, "recsys perflaw: %s: no header row\n", path);
        goto done;
    }
    rc = 0;
done:
    free(line);
    fclose(f);
    return rc;
}
