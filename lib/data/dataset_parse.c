/* Text parsers for interaction files (`user item [timestamp] [rating]`) and
 * sequence files (`user i1 i2 ...` plus an optional paired times file).
 * Only regular files are read (a FIFO or a device is refused before any
 * read, so nothing blocks or streams without end). Plain and gzip files
 * (one or more members, nothing after the last) are read in large chunks;
 * a line may be up to RS_MAX_LINE bytes, and the buffer grows only as far
 * as the longest line needs. A UTF-8 byte-order mark is skipped; LF, CRLF
 * and CR-only line ends are all accepted; a NUL byte is an error. */
#include "data/dataset_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ line reader */

#define IN_CHUNK ((size_t)1 << 16)

typedef struct line_reader {
    recsys_ctx *ctx;
    int fd;
    const char *path;
    /* compressed input (gzip) */
    int gz;                 /* 1: the file is gzip */
    int zs_live;            /* inflateInit2 done */
    int member_done;        /* the last member ended; only another member may follow */
    z_stream zs;
    unsigned char *in;
    size_t in_start, in_end;
    uint64_t in_off;        /* file offset of in[in_start] */
    int in_eof;
    /* decoded text */
    char *buf;
    size_t cap, start, end, scan; /* unread bytes are [start, end); no line end in [start, scan) */
    int eof;
    int64_t line_no;              /* of the line last returned */
} line_reader;

static int line_int(int64_t n) { return n > INT_MAX ? INT_MAX : (int)n; }

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

static recsys_status lr_open(recsys_ctx *ctx, line_reader *lr, const char *path)
{
    memset(lr, 0, sizeof *lr);
    lr->ctx = ctx;
    lr->path = path;
    lr->fd = -1;
    recsys_status st = rs_open_regular(ctx, path, "data", &lr->fd);
    if (st) return st;
    lr->in = malloc(IN_CHUNK);
    lr->cap = (size_t)1 << 14;
    lr->buf = malloc(lr->cap);
    if (!lr->in || !lr->buf) {
        free(lr->in);
        free(lr->buf);
        close(lr->fd);
        memset(lr, 0, sizeof *lr);
        lr->fd = -1;
        return rs_error(ctx, RECSYS_E_NOMEM, "%s: out of memory for the read buffer", path);
    }
    return RECSYS_OK;
}

static void lr_close(line_reader *lr)
{
    if (lr->zs_live) inflateEnd(&lr->zs);
    if (lr->fd >= 0) close(lr->fd);
    free(lr->in);
    free(lr->buf);
    memset(lr, 0, sizeof *lr);
    lr->fd = -1;
}

/* More raw bytes into in[] (keeping the unread ones). 0, or a status. */
static recsys_status lr_read_raw(line_reader *lr)
{
    if (lr->in_start > 0) {
        memmove(lr->in, lr->in + lr->in_start, lr->in_end - lr->in_start);
        lr->in_end -= lr->in_start;
        lr->in_off += lr->in_start;
        lr->in_start = 0;
    }
    while (!lr->in_eof && lr->in_end < IN_CHUNK) {
        ssize_t n = read(lr->fd, lr->in + lr->in_end, IN_CHUNK - lr->in_end);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return rs_error_at(lr->ctx, RECSYS_E_IO, lr->path, line_int(lr->line_no + 1), 0,
                               "read error: %s", strerror(errno));
        if (n == 0) lr->in_eof = 1;
        lr->in_end += (size_t)n;
        break;
    }
    return RECSYS_OK;
}

/* Decode up to `room` bytes into dst; *got = bytes produced (0 only at the end). */
static recsys_status lr_decode(line_reader *lr, char *dst, size_t room, size_t *got)
{
    *got = 0;
    if (lr->in_end - lr->in_start < 2 && !lr->in_eof) {
        recsys_status st = lr_read_raw(lr);
        if (st) return st;
    }
    if (lr->line_no == 0 && lr->in_off == 0 && lr->in_start == 0 && !lr->gz && !lr->zs_live &&
        lr->in_end >= 2 && lr->in[0] == 0x1f && lr->in[1] == 0x8b)
        lr->gz = 1;
    if (!lr->gz) {
        if (lr->in_start == lr->in_end) {
            recsys_status st = lr_read_raw(lr);
            if (st) return st;
        }
        size_t n = lr->in_end - lr->in_start < room ? lr->in_end - lr->in_start : room;
        memcpy(dst, lr->in + lr->in_start, n);
        lr->in_start += n;
        *got = n;
        return RECSYS_OK;
    }
    while (*got == 0) {
        if (lr->in_start == lr->in_end || (lr->member_done && lr->in_end - lr->in_start < 2)) {
            recsys_status st = lr_read_raw(lr);
            if (st) return st;
        }
        size_t avail = lr->in_end - lr->in_start;
        if (lr->member_done || !lr->zs_live) {
            if (avail == 0 && lr->in_eof) {
                if (!lr->zs_live) return RECSYS_OK; /* cannot happen: gz needs 2 bytes */
                return RECSYS_OK;                   /* clean end after a member */
            }
            if (avail < 2 || lr->in[lr->in_start] != 0x1f || lr->in[lr->in_start + 1] != 0x8b)
                return rs_error_at(lr->ctx, RECSYS_E_IO, lr->path, 0, 0,
                                   "%zu bytes of trailing data after the gzip stream (at byte "
                                   "%llu): not a gzip member", avail,
                                   (unsigned long long)(lr->in_off + lr->in_start));
            if (!lr->zs_live) {
                lr->zs.zalloc = z_alloc;
                lr->zs.zfree = z_free;
                lr->zs.opaque = NULL;
                int zr = inflateInit2(&lr->zs, 15 + 16);
                if (zr != Z_OK)
                    return rs_error(lr->ctx, zr == Z_MEM_ERROR ? RECSYS_E_NOMEM : RECSYS_E_IO,
                                    "%s: cannot start gzip decoding", lr->path);
                lr->zs_live = 1;
            } else {
                inflateReset(&lr->zs);
            }
            lr->member_done = 0;
        }
        if (avail == 0 && lr->in_eof)
            return rs_error_at(lr->ctx, RECSYS_E_IO, lr->path, line_int(lr->line_no + 1), 0,
                               "unexpected end of compressed data (truncated .gz file?)");
        lr->zs.next_in = lr->in + lr->in_start;
        lr->zs.avail_in = (uInt)avail;
        lr->zs.next_out = (Bytef *)dst;
        lr->zs.avail_out = (uInt)(room > (1u << 30) ? (1u << 30) : room);
        uInt out_before = lr->zs.avail_out;
        int zr = inflate(&lr->zs, Z_NO_FLUSH);
        lr->in_start = lr->in_end - lr->zs.avail_in;
        *got = out_before - lr->zs.avail_out;
        if (zr == Z_STREAM_END) {
            lr->member_done = 1;
        } else if (zr == Z_MEM_ERROR) {
            return rs_error(lr->ctx, RECSYS_E_NOMEM, "%s: out of memory decoding gzip", lr->path);
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            return rs_error_at(lr->ctx, RECSYS_E_IO, lr->path, line_int(lr->line_no + 1), 0,
                               "corrupt gzip data: %s",
                               lr->zs.msg ? lr->zs.msg : "invalid stream");
        } else if (*got == 0 && lr->in_start == lr->in_end && lr->in_eof) {
            return rs_error_at(lr->ctx, RECSYS_E_IO, lr->path, line_int(lr->line_no + 1), 0,
                               "unexpected end of compressed data (truncated .gz file?)");
        }
    }
    return RECSYS_OK;
}

/* Refill the text buffer: keep unread bytes, grow when they fill it (up to
 * the line limit). */
static recsys_status lr_fill(line_reader *lr)
{
    if (lr->start > 0) {
        size_t keep = lr->end - lr->start;
        memmove(lr->buf, lr->buf + lr->start, keep);
        lr->scan -= lr->start;
        lr->end = keep;
        lr->start = 0;
    }
    if (lr->cap - lr->end < 4096) {
        if (lr->end > RS_MAX_LINE)
            return rs_error_at(lr->ctx, RECSYS_E_PARSE, lr->path, line_int(lr->line_no + 1), 0,
                               "line is longer than %zu bytes (the limit for one line): not a "
                               "data file?", (size_t)RS_MAX_LINE);
        size_t ncap = lr->cap * 2;
        if (ncap > RS_MAX_LINE + 8192) ncap = RS_MAX_LINE + 8192;
        char *b = realloc(lr->buf, ncap);
        if (!b)
            return rs_error_at(lr->ctx, RECSYS_E_NOMEM, lr->path, line_int(lr->line_no + 1), 0,
                               "out of memory for a line of %zu bytes", lr->end);
        lr->buf = b;
        lr->cap = ncap;
    }
    size_t got = 0;
    recsys_status st = lr_decode(lr, lr->buf + lr->end, lr->cap - lr->end - 1, &got);
    if (st) return st;
    if (got == 0) lr->eof = 1;
    lr->end += got;
    return RECSYS_OK;
}

/* Next line, NUL-terminated in place (without its line end). Returns 1, 0
 * at the end of the file, or a negative status. */
static int lr_next(line_reader *lr, char **line, size_t *len)
{
    for (;;) {
        if (lr->scan < lr->start) lr->scan = lr->start;
        char *base = lr->buf + lr->scan;
        size_t n = lr->end - lr->scan;
        char *nl = memchr(base, '\n', n);
        char *cr = memchr(base, '\r', nl ? (size_t)(nl - base) : n);
        char *eol = NULL, *next = NULL;
        if (cr) {
            if (cr + 1 < lr->buf + lr->end) { eol = cr; next = cr[1] == '\n' ? cr + 2 : cr + 1; }
            else if (lr->eof) { eol = cr; next = cr + 1; }
            /* else: a CR at the end of the buffer; need one more byte */
        } else if (nl) {
            eol = nl;
            next = nl + 1;
        }
        if (eol || (lr->eof && !cr)) {
            if (!eol) {
                if (lr->start == lr->end) return 0;
                eol = next = lr->buf + lr->end;
            }
            *eol = 0;
            *line = lr->buf + lr->start;
            *len = (size_t)(eol - *line);
            lr->start = lr->scan = (size_t)(next - lr->buf);
            lr->line_no++;
            if (lr->line_no == 1 && *len >= 3 && !memcmp(*line, "\xEF\xBB\xBF", 3)) {
                *line += 3; /* UTF-8 byte-order mark */
                *len -= 3;
            } else if (lr->line_no == 1 && *len >= 2 &&
                       (!memcmp(*line, "\xFF\xFE", 2) || !memcmp(*line, "\xFE\xFF", 2))) {
                return rs_error_at(lr->ctx, RECSYS_E_PARSE, lr->path, 1, 1,
                                   "UTF-16 text (byte-order mark): convert the file to UTF-8");
            }
            char *z = memchr(*line, 0, *len);
            if (z)
                return rs_error_at(lr->ctx, RECSYS_E_PARSE, lr->path, line_int(lr->line_no),
                                   (int)(z - *line) + 1 > 0 ? line_int(z - *line + 1) : 1,
                                   "NUL byte: this is not a text file (binary data or UTF-16?)");
            return 1;
        }
        lr->scan = cr ? (size_t)(cr - lr->buf) : lr->end;
        recsys_status st = lr_fill(lr);
        if (st) return st;
    }
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Trim trailing whitespace in place; return the first non-blank char, or
 * NULL for blank and comment lines. */
static char *data_start(char *line, size_t len)
{
    while (len > 0 && is_blank(line[len - 1])) line[--len] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == 0 || *p == '#') return NULL;
    return p;
}

/* Next data line: skips blank and comment lines. 1, 0 (end) or a status. */
static int lr_next_data(line_reader *lr, char **data, char **line)
{
    for (;;) {
        size_t len = 0;
        int r = lr_next(lr, line, &len);
        if (r <= 0) return r;
        if ((*data = data_start(*line, len))) return 1;
    }
}


/* ------------------------------------------------------------ header lines */

/* Column names that header rows use. */
static int is_header_word(const char *s, size_t n)
{
    static const char *words[] = {
        "user", "users", "userid", "user_id", "uid", "u", "reviewerid", "customer",
        "customer_id", "session", "session_id", "sessionid", "visitor", "visitorid",
        "item", "items", "itemid", "item_id", "iid", "i", "movie", "movieid", "movie_id",
        "product", "productid", "product_id", "asin", "business_id", "track", "track_id",
        "time", "times", "timestamp", "ts", "date", "datetime", "unixreviewtime", "t",
        "rating", "ratings", "score", "overall", "stars", "r", "sequence", "seq",
        "events", "event", "label", "value"};
    while (n && (*s == '"' || *s == '\'')) { s++; n--; }
    while (n && (s[n - 1] == '"' || s[n - 1] == '\'')) n--;
    if (!n) return 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && !strncasecmp(words[i], s, n)) return 1;
    return 0;
}

/* 1 when every field of the line (split at blanks, commas, '::' and ';')
 * is a column name such as user, item_id or timestamp. */
static int looks_like_header(const char *p)
{
    int fields = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == ':' || *p == ';') p++;
        if (!*p) break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t' && *p != ',' && *p != ':' && *p != ';') p++;
        if (!is_header_word(s, (size_t)(p - s))) return 0;
        fields++;
    }
    return fields >= 2;
}

/* data.header: skip the first data line (1), never (0), or when it looks
 * like a header (RS_HEADER_AUTO). */
static int skip_header(int header, const char *p)
{
    return header == 1 || (header == RS_HEADER_AUTO && looks_like_header(p));
}

/* After an error on the first data line: suggest data.header. */
static void hint_header(recsys_ctx *ctx, int header)
{
    if (!ctx || header != RS_HEADER_AUTO) return;
    size_t n = strlen(ctx->errmsg);
    snprintf(ctx->errmsg + n, sizeof ctx->errmsg - n,
             " (is line 1 a header? set data.header=true to skip it)");
}

/* ------------------------------------------------------------ fields */

enum sep { SEP_NONE, SEP_TAB, SEP_SPACE, SEP_COMMA, SEP_DCOLON };

static const char *sep_name(enum sep s)
{
    switch (s) {
    case SEP_TAB: return "tab";
    case SEP_SPACE: return "space";
    case SEP_COMMA: return "comma";
    case SEP_DCOLON: return "'::'";
    default: return "none";
    }
}

/* Separator of the first data line, in order of precedence. */
static enum sep detect_sep(const char *p)
{
    if (strstr(p, "::")) return SEP_DCOLON;
    if (strchr(p, '\t')) return SEP_TAB;
    if (strchr(p, ',')) return SEP_COMMA;
    if (strchr(p, ' ')) return SEP_SPACE;
    return SEP_NONE;
}

typedef struct field {
    char *s;
    size_t len;
    int col; /* 1-based byte column in the line */
} field;

/* Split p (inside line, trailing blanks trimmed) into at most max+1 fields,
 * NUL-terminating each. Tab and space files split on runs of blanks; comma
 * and '::' files split exactly and trim blanks around each field (which may
 * leave it empty). Returns the number of fields found (max+1 = "more"). */
static int split_fields(char *line, char *p, enum sep sep, field *f, int max)
{
    int k = 0;
    if (sep == SEP_TAB || sep == SEP_SPACE) {
        while (*p && k <= max) {
            char *s = p;
            while (*p && *p != ' ' && *p != '\t') p++;
            f[k].s = s;
            f[k].len = (size_t)(p - s);
            f[k].col = (int)(s - line) + 1;
            k++;
            if (*p) *p++ = 0;
            while (*p == ' ' || *p == '\t') p++;
        }
        return k;
    }
    size_t seplen = sep == SEP_DCOLON ? 2 : 1;
    for (;;) {
        char *e = sep == SEP_DCOLON ? strstr(p, "::") : strchr(p, ',');
        char *end = e ? e : p + strlen(p);
        char *s = p;
        while (s < end && (*s == ' ' || *s == '\t')) s++;
        char *t = end;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
        f[k].s = s;
        f[k].len = (size_t)(t - s);
        f[k].col = (int)(s - line) + 1;
        k++;
        *t = 0; /* t <= end: also cuts the separator when t == end */
        if (!e || k > max) return k;
        p = e + seplen;
    }
}

/* ------------------------------------------------------------ numbers */

enum { NUM_OK, NUM_NOT_INT, NUM_OVERFLOW };

/* Decimal int64 with optional sign; the whole token must be digits. */
static int parse_i64(const char *s, int64_t *v)
{
    int neg = 0;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (!*s) return NUM_NOT_INT;
    uint64_t acc = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return NUM_NOT_INT;
        unsigned d = (unsigned)(*s - '0');
        if (acc > (limit - d) / 10) return NUM_OVERFLOW;
        acc = acc * 10 + d;
    }
    *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return NUM_OK;
}

/* Any finite decimal number (ratings). */
static int parse_real(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end) return NUM_NOT_INT;
    if (!isfinite(x) || (errno == ERANGE && fabs(x) > 1.0)) return NUM_OVERFLOW;
    *v = x;
    return NUM_OK;
}

/* ------------------------------------------------------------ interactions */

/* Per-column facts for the two optional columns of 4-field files, used to
 * decide which one holds the timestamps. */
typedef struct num_col {
    int all_int;    /* every value an integer */
    int all_small;  /* every value in [0, 10]: looks like a rating */
    int64_t bad_line;
    int bad_col;
    char bad_text[48];
} num_col;

/* Parse column value f (integer time or number) and record its facts. */
static recsys_status parse_opt_col(recsys_ctx *ctx, const line_reader *lr, const field *f,
                                   int strict_int, num_col *c, int64_t *v)
{
    int line = line_int(lr->line_no);
    int r = parse_i64(f->s, v);
    if (r == NUM_OVERFLOW)
        return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, line, f->col,
                           "number '%.40s' overflows a 64-bit integer", f->s);
    if (r == NUM_OK) {
        if (*v < 0 || *v > 10) c->all_small = 0;
        return RECSYS_OK;
    }
    if (strict_int)
        return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, line, f->col,
                           "timestamp '%.40s' is not an integer", f->s);
    double x;
    r = parse_real(f->s, &x);
    if (r == NUM_NOT_INT)
        return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, line, f->col,
                           "'%.40s' is not a number (expected a timestamp or a rating)", f->s);
    if (r == NUM_OVERFLOW)
        return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, line, f->col,
                           "number '%.40s' is out of range", f->s);
    if (c->all_int) {
        c->all_int = 0;
        c->bad_line = lr->line_no;
        c->bad_col = f->col;
        snprintf(c->bad_text, sizeof c->bad_text, "%.40s", f->s);
    }
    *v = 0;
    return RECSYS_OK;
}

/* Intern the user and item tokens of one event. */
static recsys_status intern_pair(recsys_ctx *ctx, const line_reader *lr, rs_raw *raw,
                                 const field *fu, const field *fi, int64_t *u, int64_t *i)
{
    *u = rs_strtab_intern(&raw->users, fu->s, fu->len);
    *i = rs_strtab_intern(&raw->items, fi->s, fi->len);
    if (*u < 0 || *i < 0) return rs_error(ctx, RECSYS_E_NOMEM, "%s: out of memory", lr->path);
    if (raw->items.n > RS_MAX_ITEMS)
        return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, line_int(lr->line_no), fi->col,
                           "more than %lld distinct items", (long long)RS_MAX_ITEMS);
    return RECSYS_OK;
}

typedef struct inter_state {
    enum sep sep;
    int nf;              /* fields per line, from the first data line */
    int64_t *alt;        /* column 4 values of 4-field files */
    size_t alt_cap;
    num_col c3, c4;
} inter_state;

/* One data line of an interaction file. */
static recsys_status inter_line(recsys_ctx *ctx, line_reader *lr, char *line, char *p,
                                inter_state *s, rs_raw *raw)
{
    int ln = line_int(lr->line_no);
    if (s->sep == SEP_NONE) {
        s->sep = detect_sep(p);
        if (s->sep == SEP_NONE)
            return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, ln, (int)(p - line) + 1,
                               "expected 'user item [timestamp] [rating]' separated by tab, "
                               "space, comma or '::', found one field");
    }
    field f[5];
    size_t line_len = strlen(line);
    int k = split_fields(line, p, s->sep, f, 4);
    if (!s->nf) {
        if (k > 4)
            return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, ln, f[4].col,
                               "more than 4 fields: expected 'user item [timestamp] [rating]' "
                               "(a sequence file? set data.format=sequences)");
        if (k < 2)
            return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, ln, (int)line_len + 1,
                               "expected at least user and item separated by %s",
                               sep_name(s->sep));
        s->nf = k;
    } else if (k != s->nf) {
        int col = k < s->nf ? (int)line_len + 1 : f[s->nf].col;
        return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, ln, col,
                           "expected %d fields separated by %s (as on the first data line), "
                           "found %s%d", s->nf, sep_name(s->sep), k > s->nf ? "more than " : "",
                           k > s->nf ? s->nf : k);
    }
    for (int j = 0; j < k; j++)
        if (f[j].len == 0)
            return rs_error_at(ctx, RECSYS_E_PARSE, lr->path, ln, f[j].col, "empty field %d",
                               j + 1);
    int64_t u, i, t3 = 0, t4 = 0;
    recsys_status st = intern_pair(ctx, lr, raw, &f[0], &f[1], &u, &i);
    if (st) return st;
    if (k >= 3 && (st = parse_opt_col(ctx, lr, &f[2], k == 3, &s->c3, &t3))) return st;
    if (k == 4) {
        if ((st = parse_opt_col(ctx, lr, &f[3], 0, &s->c4, &t4))) return st;
        if (raw->n == s->alt_cap) {
            size_t cap = s->alt_cap ? s->alt_cap * 2 : 4096;
            int64_t *a = realloc(s->alt, cap * sizeof *a);
            if (!a) return rs_error(ctx, RECSYS_E_NOMEM, "%s: out of memory", lr->path);
            s->alt = a;
            s->alt_cap = cap;
        }
        s->alt[raw->n] = t4;
    }
    if (rs_raw_push(raw, u, i, k >= 3, t3))
        return rs_error(ctx, RECSYS_E_NOMEM, "%s: out of memory", lr->path);
    return RECSYS_OK;
}

/* 4-field files: `user item timestamp rating` is the documented layout, but
 * MovieLens writes `user item rating timestamp`. Column 4 holds the times
 * when column 3 does not (not all integers) and column 4 does, or when both
 * are integers and column 3 looks like a rating (all in 0..10) while column
 * 4 does not. */
static recsys_status pick_time_column(recsys_ctx *ctx, const char *path, inter_state *s,
                                      rs_raw *raw)
{
    if (!s->c3.all_int && !s->c4.all_int)
        return rs_error_at(ctx, RECSYS_E_PARSE, path, line_int(s->c3.bad_line), s->c3.bad_col,
                           "timestamp '%s' is not an integer (neither column 3 nor column 4 "
                           "holds integer timestamps)", s->c3.bad_text);
    int use4 = !s->c3.all_int || (s->c4.all_int && s->c3.all_small && !s->c4.all_small);
    if (use4) {
        int64_t *t = raw->time;
        raw->time = s->alt;
        s->alt = t;
    }
    return RECSYS_OK;
}

recsys_status rs_parse_interactions(recsys_ctx *ctx, const char *path, int header,
                                    rs_raw *raw)
{
    line_reader lr;
    recsys_status st = lr_open(ctx, &lr, path);
    if (st) return st;
    inter_state s = {.sep = SEP_NONE, .c3 = {.all_int = 1, .all_small = 1},
                     .c4 = {.all_int = 1, .all_small = 1}};
    char *line, *p;
    int r, first = 1;
    while ((r = lr_next_data(&lr, &p, &line)) > 0) {
        if (first && skip_header(header, p)) { first = 0; continue; }
        if ((st = inter_line(ctx, &lr, line, p, &s, raw))) {
            if (first && st == RECSYS_E_PARSE) hint_header(ctx, header);
            break;
        }
        first = 0;
    }
    if (!st && r < 0) st = r;
    if (!st && raw->n == 0)
        st = rs_error_at(ctx, RECSYS_E_PARSE, path, 0, 0, "no events (empty file)");
    if (!st && s.nf == 4) st = pick_time_column(ctx, path, &s, raw);
    free(s.alt);
    lr_close(&lr);
    return st;
}

/* ------------------------------------------------------------ sequences */

/* Next blank-separated token of a sequence line, NUL-terminated in place. */
static int next_token(char *line, char **p, field *f)
{
    char *q = *p;
    while (*q == ' ' || *q == '\t') q++;
    if (!*q) { *p = q; return 0; }
    f->s = q;
    while (*q && *q != ' ' && *q != '\t') q++;
    f->len = (size_t)(q - f->s);
    f->col = (int)(f->s - line) + 1;
    if (*q) *q++ = 0;
    *p = q;
    return 1;
}

static int64_t count_tokens(const char *p)
{
    int64_t n = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        n++;
        while (*p && *p != ' ' && *p != '\t') p++;
    }
    return n;
}

typedef struct seq_files {
    line_reader a, b; /* items, times */
    int has_times;
} seq_files;

/* Check the times line matches the items line: same user token, same
 * number of fields. Both lines are untouched (counted before splitting). */
static recsys_status check_times_line(recsys_ctx *ctx, seq_files *sf, const char *pa,
                                      const char *pb, int64_t n_items)
{
    int lb = line_int(sf->b.line_no);
    int64_t n_times = count_tokens(pb);
    if (n_times != n_items + 1)
        return rs_error_at(ctx, RECSYS_E_PARSE, sf->b.path, lb, 0,
                           "has %lld fields but line %lld of %s has %lld (times must have the "
                           "same layout as the items)", (long long)n_times,
                           (long long)sf->a.line_no, sf->a.path, (long long)(n_items + 1));
    size_t la = strcspn(pa, " \t"), lbn = strcspn(pb, " \t");
    if (la != lbn || memcmp(pa, pb, la))
        return rs_error_at(ctx, RECSYS_E_PARSE, sf->b.path, lb, 1,
                           "user '%.*s' does not match user '%.*s' on line %lld of %s",
                           (int)(lbn > 40 ? 40 : lbn), pb, (int)(la > 40 ? 40 : la), pa,
                           (long long)sf->a.line_no, sf->a.path);
    return RECSYS_OK;
}

/* One data line of the sequence file (and its times line). */
static recsys_status seq_line(recsys_ctx *ctx, seq_files *sf, char *line, char *p, rs_raw *raw)
{
    int la = line_int(sf->a.line_no);
    int64_t n_items = count_tokens(p) - 1;
    if (n_items < 1)
        return rs_error_at(ctx, RECSYS_E_PARSE, sf->a.path, la, (int)strlen(line) + 1,
                           "expected 'user item1 item2 ...', found only the user");
    char *lineb = NULL, *pb = NULL;
    if (sf->has_times) {
        int r = lr_next_data(&sf->b, &pb, &lineb);
        if (r < 0) return r;
        if (r == 0)
            return rs_error_at(ctx, RECSYS_E_PARSE, sf->b.path, line_int(sf->b.line_no + 1), 0,
                               "ends before line %d of %s (times must have one line per "
                               "sequence line)", la, sf->a.path);
        recsys_status st = check_times_line(ctx, sf, p, pb, n_items);
        if (st) return st;
    }
    field fu = {0}, fi = {0}, ft = {0}, fut = {0};
    next_token(line, &p, &fu);
    if (sf->has_times) next_token(lineb, &pb, &fut);
    int64_t u = rs_strtab_intern(&raw->users, fu.s, fu.len);
    if (u < 0) return rs_error(ctx, RECSYS_E_NOMEM, "%s: out of memory", sf->a.path);
    while (next_token(line, &p, &fi)) {
        int64_t t = 0;
        if (sf->has_times) {
            next_token(lineb, &pb, &ft);
            int r = parse_i64(ft.s, &t);
            if (r != NUM_OK)
                return rs_error_at(ctx, RECSYS_E_PARSE, sf->b.path, line_int(sf->b.line_no),
                                   ft.col, r == NUM_OVERFLOW
                                   ? "timestamp '%.40s' overflows a 64-bit integer"
                                   : "timestamp '%.40s' is not an integer", ft.s);
        }
        int64_t i = rs_strtab_intern(&raw->items, fi.s, fi.len);
        if (i < 0 || rs_raw_push(raw, u, i, sf->has_times, t))
            return rs_error(ctx, RECSYS_E_NOMEM, "%s: out of memory", sf->a.path);
        if (raw->items.n > RS_MAX_ITEMS)
            return rs_error_at(ctx, RECSYS_E_PARSE, sf->a.path, la, fi.col,
                               "more than %lld distinct items", (long long)RS_MAX_ITEMS);
    }
    return RECSYS_OK;
}

recsys_status rs_parse_sequences(recsys_ctx *ctx, const char *path, const char *times_path,
                                 int header, rs_raw *raw)
{
    seq_files sf;
    memset(&sf, 0, sizeof sf);
    recsys_status st = lr_open(ctx, &sf.a, path);
    if (st) return st;
    sf.has_times = times_path && *times_path;
    if (sf.has_times && (st = lr_open(ctx, &sf.b, times_path))) {
        lr_close(&sf.a);
        return st;
    }
    char *line, *p;
    int r;
    int first = 1;
    while ((r = lr_next_data(&sf.a, &p, &line)) > 0) {
        if (first && skip_header(header, p)) {
            first = 0;
            /* the times file has the same layout: skip its first line too */
            char *lb, *pb;
            if (sf.has_times && (r = lr_next_data(&sf.b, &pb, &lb)) < 0) break;
            continue;
        }
        first = 0;
        if ((st = seq_line(ctx, &sf, line, p, raw))) break;
    }
    if (!st && r < 0) st = r;
    if (!st && sf.has_times) {
        r = lr_next_data(&sf.b, &p, &line);
        if (r < 0) st = r;
        else if (r > 0)
            st = rs_error_at(ctx, RECSYS_E_PARSE, times_path, line_int(sf.b.line_no), 1,
                             "extra line: %s has no matching sequence line", path);
    }
    if (!st && raw->n == 0)
        st = rs_error_at(ctx, RECSYS_E_PARSE, path, 0, 0, "no events (empty file)");
    lr_close(&sf.a);
    if (sf.has_times) lr_close(&sf.b);
    return st;
}

/* ------------------------------------------------------------ detection */

/* data.format "auto", from the whole file: comma and '::' files are
 * interaction files; a line of more than 4 fields makes it a sequence file;
 * lines that all have the same count of 2..4 fields make an interaction
 * file. Anything else (say, 3-field lines and one 2-field line) contradicts
 * both readings and stops with the location of the first line that differs. */
recsys_status rs_detect_sequences(recsys_ctx *ctx, const char *path, int header,
                                  int *is_sequences)
{
    *is_sequences = 0;
    line_reader lr;
    recsys_status st = lr_open(ctx, &lr, path);
    if (st) return st;
    enum sep sep = SEP_NONE;
    int first_k = 0, first = 1, more = 0;
    int64_t first_line = 0, diff_line = 0;
    int diff_k = 0, diff_col = 0;
    char *line, *p;
    int r;
    while ((r = lr_next_data(&lr, &p, &line)) > 0) {
        if (first && skip_header(header, p)) { first = 0; continue; }
        first = 0;
        if (sep == SEP_NONE && (sep = detect_sep(p)) == SEP_NONE) sep = SEP_SPACE;
        if (sep == SEP_COMMA || sep == SEP_DCOLON) break; /* never a sequence file */
        int k = (int)(count_tokens(p) > 5 ? 5 : count_tokens(p));
        if (!first_k) { first_k = k; first_line = lr.line_no; }
        if (k > 4) { more = 1; break; }
        if (k != first_k && !diff_line) {
            diff_line = lr.line_no;
            diff_k = k;
            diff_col = (int)(p - line) + 1;
        }
    }
    if (r < 0) st = r;
    if (!st && !more && diff_line)
        st = rs_error_at(ctx, RECSYS_E_PARSE, path, line_int(diff_line), diff_col,
                         "has %d fields but line %lld has %d: this is neither an interaction "
                         "file (every line 'user item [timestamp] [rating]') nor clearly a "
                         "sequence file; fix the line or set data.format", diff_k,
                         (long long)first_line, first_k);
    if (!st) *is_sequences = more || first_k > 4;
    lr_close(&lr);
    return st;
}
