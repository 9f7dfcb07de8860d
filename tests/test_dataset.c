/* Dataset layer: parsers, id maps, ordering, split bookkeeping, filtering,
 * error locations, the synthetic generator, and (when present) real data. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DATA_DIR RS_SOURCE_ROOT "/../shared/data"

typedef struct fixture {
    recsys_ctx *ctx;
    recsys_opts *opts;
    char dir[64];
    char path[32][256]; /* files written by the test, removed in teardown */
    int n_paths;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    strcpy(f->dir, "/tmp/rs_dataset_XXXXXX");
    if (!mkdtemp(f->dir) || recsys_ctx_new(&f->ctx) || recsys_opts_new(f->ctx, &f->opts))
        return -1;
    recsys_ctx_set_threads(f->ctx, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->n_paths; i++) unlink(f->path[i]);
    rmdir(f->dir);
    recsys_opts_free(f->opts);
    recsys_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* Write text to dir/name and return the path (kept for teardown). */
static const char *write_file(fixture *f, const char *name, const char *text)
{
    assert_true(f->n_paths < 32);
    char *p = f->path[f->n_paths++];
    snprintf(p, 256, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return p;
}

static const char *write_gz(fixture *f, const char *name, const char *text)
{
    assert_true(f->n_paths < 32);
    char *p = f->path[f->n_paths++];
    snprintf(p, 256, "%s/%s", f->dir, name);
    gzFile g = gzopen(p, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, text, (unsigned)strlen(text)), (int)strlen(text));
    gzclose(g);
    return p;
}

/* Write n raw bytes (may hold NULs) to dir/name. */
static const char *write_bytes(fixture *f, const char *name, const void *data, size_t n)
{
    assert_true(f->n_paths < 32);
    char *p = f->path[f->n_paths++];
    snprintf(p, 256, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
    return p;
}

/* The last error is status st at a file ending in name, line:col (col 0 =
 * any), and its message holds needle. */
static void expect_loc(fixture *f, const char *name, int line, int col, const char *needle)
{
    const char *file, *msg = recsys_ctx_errmsg(f->ctx);
    int l, c;
    assert_int_equal(recsys_ctx_error_location(f->ctx, &file, &l, &c), RECSYS_OK);
    size_t fl = strlen(file), nl = strlen(name);
    if (fl < nl || strcmp(file + fl - nl, name) || l != line || (col && c != col) ||
        !strstr(msg, needle))
        fail_msg("expected %s:%d:%d '%s', got '%s'", name, line, col, needle, msg);
}

static double ds_stat(const recsys_dataset *ds, int s)
{
    double v = -1;
    assert_int_equal(recsys_dataset_stat(ds, s, &v), RECSYS_OK);
    return v;
}

/* Item names of user u's sequence joined by spaces. */
static void user_seq(const recsys_dataset *ds, int64_t u, char *out, size_t cap)
{
    const int32_t *items;
    const int64_t *times;
    size_t n;
    assert_int_equal(recsys_dataset_user_items(ds, u, &items, &times, &n), RECSYS_OK);
    out[0] = 0;
    for (size_t k = 0; k < n; k++) {
        const char *name;
        assert_int_equal(recsys_dataset_item_name(ds, items[k], &name), RECSYS_OK);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", k ? " " : "", name);
    }
}

/* Load must fail with status st at path:line. */
static void expect_error(fixture *f, recsys_status got, recsys_status st, const char *path,
                         int line)
{
    assert_int_equal(got, st);
    const char *file;
    int l, c;
    assert_int_equal(recsys_ctx_error_location(f->ctx, &file, &l, &c), RECSYS_OK);
    assert_string_equal(file, path);
    assert_int_equal(l, line);
    const char *msg = recsys_ctx_errmsg(f->ctx);
    assert_non_null(strstr(msg, path));
    if (line > 0) {
        char tag[32];
        snprintf(tag, sizeof tag, ":%d", line);
        assert_non_null(strstr(msg, tag));
    }
}

/* ------------------------------------------------------------ formats */

static void test_separators(void **state)
{
    fixture *f = *state;
    static const char *texts[] = {
        "u1\ta\nu2\tb\nu1\tc\n",
        "u1 a\nu2  b\nu1 c\n",
        "u1,a\nu2, b\nu1,c\n",
        "u1::a\nu2::b\nu1::c\n",
    };
    static const char *names[] = {"tab.txt", "space.txt", "comma.csv", "dcolon.dat"};
    for (int i = 0; i < 4; i++) {
        recsys_dataset *ds = NULL;
        const char *p = write_file(f, names[i], texts[i]);
        assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
        assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 2);
        assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 3);
        assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 3);
        assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 0);
        char seq[64];
        user_seq(ds, 0, seq, sizeof seq);
        assert_string_equal(seq, "a c");
        user_seq(ds, 1, seq, sizeof seq);
        assert_string_equal(seq, "b");
        recsys_dataset_free(ds);
    }
}

static void test_comments_blank_crlf(void **state)
{
    fixture *f = *state;
    const char *p = write_file(f, "c.txt", "# header\n\n1 10 5\r\n  \n# more\n1 11 6\r\n2 10 7");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 3);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 1);
    const int32_t *items;
    const int64_t *times;
    size_t n;
    assert_int_equal(recsys_dataset_user_items(ds, 1, &items, &times, &n), RECSYS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(times[0], 7); /* last line had no newline */
    recsys_dataset_free(ds);
}

static void test_gzip(void **state)
{
    fixture *f = *state;
    const char *p = write_gz(f, "d.txt.gz", "7\t100\t3\n7\t200\t1\n8\t100\t2\n");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 2);
    char seq[64];
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "200 100"); /* ordered by time 1 < 3 */
    recsys_dataset_free(ds);
}

static void test_time_order_stable(void **state)
{
    fixture *f = *state;
    /* User u: times 5 5 1 5 3 1 on items a..f: stable order c f e a b d. */
    const char *p = write_file(f, "t.txt",
                               "u a 5\nu b 5\nv z 9\nu c 1\nu d 5\nu e 3\nu f 1\n");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    char seq[64];
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "c f e a b d");
    const int32_t *items;
    const int64_t *times;
    size_t n;
    assert_int_equal(recsys_dataset_user_items(ds, 0, &items, &times, &n), RECSYS_OK);
    assert_int_equal(n, 6);
    for (size_t k = 1; k < n; k++) assert_true(times[k - 1] <= times[k]);
    /* Without times, file order is kept. */
    p = write_file(f, "nt.txt", "u a\nu b\nv z\nu c\n");
    recsys_dataset_free(ds);
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "a b c");
    assert_int_equal(recsys_dataset_user_items(ds, 0, &items, &times, &n), RECSYS_OK);
    assert_null(times);
    recsys_dataset_free(ds);
}

static void test_four_columns(void **state)
{
    fixture *f = *state;
    /* MovieLens layout: user item rating time. */
    const char *p = write_file(f, "ml.dat", "1::10::5::978300760\n1::11::3::978300000\n");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    char seq[64];
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "11 10");
    recsys_dataset_free(ds);
    /* Documented layout: user item time rating (ratings may be decimals). */
    p = write_file(f, "tr.csv", "1,10,200,4.5\n1,11,100,2\n");
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "11 10");
    recsys_dataset_free(ds);
}

static void test_id_maps(void **state)
{
    fixture *f = *state;
    const char *p = write_file(f, "ids.txt", "alice X9\nbob 42\nalice 42\ncarol x9\n");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    static const char *users[] = {"alice", "bob", "carol"};
    static const char *items[] = {"X9", "42", "x9"};
    for (int64_t u = 0; u < 3; u++) {
        const char *name;
        int64_t id = -1;
        assert_int_equal(recsys_dataset_user_name(ds, u, &name), RECSYS_OK);
        assert_string_equal(name, users[u]); /* dense ids by first appearance */
        assert_int_equal(recsys_dataset_user_id(ds, name, &id), RECSYS_OK);
        assert_int_equal(id, u);
    }
    for (int32_t i = 1; i <= 3; i++) {
        const char *name;
        int32_t id = -1;
        assert_int_equal(recsys_dataset_item_name(ds, i, &name), RECSYS_OK);
        assert_string_equal(name, items[i - 1]);
        assert_int_equal(recsys_dataset_item_id(ds, name, &id), RECSYS_OK);
        assert_int_equal(id, i);
    }
    int32_t item;
    int64_t user;
    const char *name;
    assert_int_equal(recsys_dataset_item_id(ds, "X", &item), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_dataset_user_id(ds, "dave", &user), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_dataset_item_name(ds, 0, &name), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_item_name(ds, 4, &name), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_user_name(ds, 3, &name), RECSYS_E_INVALID);
    recsys_dataset_free(ds);
}

/* ------------------------------------------------------------ split */

static void test_split_helpers(void **state)
{
    fixture *f = *state;
    /* Users of lengths 2, 3, 4, 5; item 1 is everyone's first item. */
    int64_t u[] = {0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3};
    int64_t it[] = {1, 2, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 4, 5};
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 14, u, it, NULL, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds->holdout, 2);
    static const int64_t train2[] = {2, 3, 2, 3}, eval2[] = {0, 0, 1, 1};
    for (int64_t k = 0; k < 4; k++) {
        assert_int_equal(rs_user_train_len(ds, k), train2[k]);
        assert_int_equal(rs_user_evaluated(ds, k), eval2[k]);
    }
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVAL_USERS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_MIN_LEN), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_MAX_LEN), 5);
    assert_true(ds_stat(ds, RECSYS_STAT_MEAN_LEN) == 3.5);
    /* Popularity counts only the training parts: item 3 is in user 1's
     * (untested) sequence and user 3's training prefix. */
    int32_t i3;
    assert_int_equal(recsys_dataset_item_id(ds, "3", &i3), RECSYS_OK);
    assert_int_equal(ds->item_count[i3], 2);
    assert_int_equal(ds->item_count[1], 4);
    recsys_dataset_free(ds);

    assert_int_equal(recsys_opts_set(f->opts, "data.split", "last"), RECSYS_OK);
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 14, u, it, NULL, f->opts, &ds),
                     RECSYS_OK);
    assert_int_equal(ds->holdout, 1);
    static const int64_t train1[] = {2, 2, 3, 4}, eval1[] = {0, 1, 1, 1};
    for (int64_t k = 0; k < 4; k++) {
        assert_int_equal(rs_user_train_len(ds, k), train1[k]);
        assert_int_equal(rs_user_evaluated(ds, k), eval1[k]);
    }
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVAL_USERS), 3);
    assert_int_equal(ds->item_count[i3], 2); /* users 2 and 3 */
    recsys_dataset_free(ds);
}

static void test_min_counts(void **state)
{
    fixture *f = *state;
    /* Item c occurs once; after dropping it user w has 1 event left. */
    const char *p = write_file(f, "mc.txt", "w c\nu a\nu b\nv a\nw b\nv b\nu a\n");
    assert_int_equal(recsys_opts_set_int(f->opts, "data.min_item_count", 2), RECSYS_OK);
    assert_int_equal(recsys_opts_set_int(f->opts, "data.min_user_count", 2), RECSYS_OK);
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load(f->ctx, p, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 5);
    const char *name;
    int32_t item;
    int64_t user;
    assert_int_equal(recsys_dataset_user_name(ds, 0, &name), RECSYS_OK);
    assert_string_equal(name, "u");
    assert_int_equal(recsys_dataset_item_name(ds, 1, &name), RECSYS_OK);
    assert_string_equal(name, "a");
    assert_int_equal(recsys_dataset_item_id(ds, "c", &item), RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_dataset_user_id(ds, "w", &user), RECSYS_E_NOT_FOUND);
    recsys_dataset_free(ds);
    /* Filtering everything away is an error, not an empty dataset. */
    assert_int_equal(recsys_opts_set_int(f->opts, "data.min_item_count", 100), RECSYS_OK);
    assert_int_equal(recsys_dataset_load(f->ctx, p, f->opts, &ds), RECSYS_E_INVALID);
    assert_null(ds);
}

/* ------------------------------------------------------------ errors */

static void test_malformed(void **state)
{
    fixture *f = *state;
    static const struct { const char *text; int line, col; } cases[] = {
        {"1\t2\t3\n1\t3\t4\n# c\n1\t4\n", 4, 4},         /* missing timestamp */
        {"1 2 3\n1 3 x7\n", 2, 5},                      /* non-numeric timestamp */
        {"1\t2\n1,3\n", 2, 0},                          /* wrong separator */
        {"1 2 5\n1 3 99999999999999999999\n", 2, 5},    /* overflow */
        {"1 2 3 4 5 6\n", 1, 9},                        /* too many fields */
        {"1,2\n3,\n", 2, 0},                            /* empty field */
        {"lonely\n", 1, 1},                             /* no separator */
        {"1 2 3 abc\n", 1, 7},                          /* rating not a number */
        {"1 2 3.5\n", 1, 5},                            /* fractional time */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.txt", i);
        const char *p = write_file(f, name, cases[i].text);
        recsys_dataset *ds = (recsys_dataset *)1;
        recsys_status st = recsys_dataset_load(f->ctx, p, NULL, &ds);
        assert_null(ds);
        expect_error(f, st, RECSYS_E_PARSE, p, cases[i].line);
        if (cases[i].col) {
            int c;
            recsys_ctx_error_location(f->ctx, NULL, NULL, &c);
            assert_int_equal(c, cases[i].col);
        }
        unlink(p);
        f->n_paths--;
    }
}

static void test_empty_and_missing(void **state)
{
    fixture *f = *state;
    recsys_dataset *ds;
    const char *p = write_file(f, "empty.txt", "");
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    assert_null(ds);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "empty.txt"));
    p = write_file(f, "comments.txt", "# nothing\n\n");
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, p, NULL, NULL, &ds), RECSYS_E_PARSE);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no_such_file.txt", f->dir);
    assert_int_equal(recsys_dataset_load(f->ctx, missing, NULL, &ds), RECSYS_E_IO);
    assert_null(ds);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "no_such_file.txt"));
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, missing, NULL, NULL, &ds),
                     RECSYS_E_IO);
    assert_int_equal(recsys_dataset_open(f->ctx, missing, NULL, &ds), RECSYS_E_IO);
    /* A truncated .gz is an I/O error, not a silently short dataset. */
    char big[4096] = "";
    for (int i = 0; i < 300; i++) snprintf(big + strlen(big), sizeof big - strlen(big), "%d %d\n", i, i * 7);
    p = write_gz(f, "cut.gz", big);
    FILE *fp = fopen(p, "r+b");
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(p, len / 2), 0);
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_E_IO);
    assert_null(ds);
}

static void test_null_args(void **state)
{
    fixture *f = *state;
    recsys_dataset *ds = (recsys_dataset *)1;
    int64_t a[1] = {1};
    assert_int_equal(recsys_dataset_load(NULL, "x", NULL, &ds), RECSYS_E_INVALID);
    assert_null(ds);
    assert_int_equal(recsys_dataset_load(f->ctx, NULL, NULL, &ds), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_load(f->ctx, "x", NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, NULL, NULL, NULL, &ds),
                     RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_open(f->ctx, NULL, NULL, &ds), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_synthetic(f->ctx, NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 1, NULL, a, NULL, NULL, &ds),
                     RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 0, a, a, NULL, NULL, &ds),
                     RECSYS_E_INVALID);
    double v;
    const int32_t *items;
    size_t n;
    const char *name;
    int32_t item;
    int64_t user;
    assert_int_equal(recsys_dataset_stat(NULL, RECSYS_STAT_USERS, &v), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_user_items(NULL, 0, &items, NULL, &n), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_user_name(NULL, 0, &name), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_item_name(NULL, 1, &name), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_item_id(NULL, "1", &item), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_user_id(NULL, "1", &user), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 1, a, a, NULL, NULL, &ds), RECSYS_OK);
    assert_int_equal(recsys_dataset_stat(ds, RECSYS_STAT_COUNT, &v), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_stat(ds, RECSYS_STAT_USERS, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_user_items(ds, 1, &items, NULL, &n), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_user_items(ds, -1, &items, NULL, &n), RECSYS_E_INVALID);
    assert_int_equal(recsys_dataset_item_id(ds, NULL, &item), RECSYS_E_INVALID);
    recsys_dataset_free(ds);
    recsys_dataset_free(NULL);
}

/* ------------------------------------------------------------ sequences */

static void test_sequences(void **state)
{
    fixture *f = *state;
    const char *p = write_file(f, "s.txt", "# seqs\nu1 a b c\n\nu2\tb\td\n");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, p, NULL, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 4);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 5);
    char seq[64];
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "a b c");
    recsys_dataset_free(ds);
    /* Paired times reorder (stably) and are kept. */
    const char *t = write_file(f, "s_t.txt", "u1 30 10 30\nu2 1 2\n");
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, p, t, NULL, &ds), RECSYS_OK);
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "b a c");
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 1);
    recsys_dataset_free(ds);
    /* open(): 4- and 3-field lines contradict both readings: auto stops at
     * the first line that differs; data.format decides. */
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    expect_loc(f, "s.txt", 4, 1, "has 3 fields but line 2 has 4");
    assert_int_equal(recsys_opts_set(f->opts, "data.format", "sequences"), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 5);
    recsys_dataset_free(ds);
    assert_int_equal(recsys_opts_set(f->opts, "data.format", "auto"), RECSYS_OK);
    /* A line of more than 4 fields is evidence of a sequence file. */
    const char *p5 = write_file(f, "s5.txt", "u1 a\nu2 a b c d e\n");
    assert_int_equal(recsys_dataset_open(f->ctx, p5, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 6);
    recsys_dataset_free(ds);
    /* ... and data.times_path is used. */
    assert_int_equal(recsys_opts_set(f->opts, "data.times_path", t), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 1);
    recsys_dataset_free(ds);
}

static void test_times_mismatch(void **state)
{
    fixture *f = *state;
    const char *p = write_file(f, "m.txt", "u1 a b\nu2 c\n");
    static const struct { const char *times; int line; } cases[] = {
        {"u1 1 2\nu3 5\n", 2},       /* other user */
        {"u1 1\nu2 5\n", 1},         /* fewer fields */
        {"u1 1 2\n", 2},             /* fewer lines */
        {"u1 1 2\nu2 5\nu3 6\n", 3}, /* extra line */
        {"u1 1 2\nu2 x\n", 2},       /* not a number */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%zu.txt", i);
        const char *t = write_file(f, name, cases[i].times);
        recsys_dataset *ds = (recsys_dataset *)1;
        recsys_status st = recsys_dataset_load_sequences(f->ctx, p, t, NULL, &ds);
        assert_null(ds);
        expect_error(f, st, RECSYS_E_PARSE, t, cases[i].line);
        unlink(t);
        f->n_paths--;
    }
    /* A user line without items is malformed. */
    p = write_file(f, "noitems.txt", "u1 a\nu2\n");
    recsys_dataset *ds;
    expect_error(f, recsys_dataset_load_sequences(f->ctx, p, NULL, NULL, &ds), RECSYS_E_PARSE,
                 p, 2);
}

static void test_long_line(void **state)
{
    fixture *f = *state;
    /* One sequence of 200000 items (about 1.3 MB): longer than the buffer. */
    size_t cap = 2000000, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "first 1 2\nbig");
    for (int i = 0; i < 200000; i++) len += (size_t)snprintf(text + len, cap - len, " %d", i % 5000);
    snprintf(text + len, cap - len, "\nlast 3\n");
    const char *p = write_file(f, "long.txt", text);
    free(text);
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 3);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_MAX_LEN), 200000);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 5000);
    recsys_dataset_free(ds);
}

static void test_open_formats(void **state)
{
    fixture *f = *state;
    /* Three fields on every line: interactions (user item time) under auto,
     * a sequence file when forced. */
    const char *p = write_file(f, "amb.txt", "u 1 2\nv 3 4\n");
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 1);
    recsys_dataset_free(ds);
    assert_int_equal(recsys_opts_set(f->opts, "data.format", "sequences"), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 4);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 0);
    recsys_dataset_free(ds);
    /* A sequence file forced through the interaction parser fails cleanly. */
    p = write_file(f, "seq5.txt", "u 1 2 3 4 5\n");
    assert_int_equal(recsys_opts_set(f->opts, "data.format", "interactions"), RECSYS_OK);
    expect_error(f, recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_E_PARSE, p, 1);
}

static void test_from_arrays(void **state)
{
    fixture *f = *state;
    int64_t u[] = {5, 5, 9, 5}, it[] = {100, 200, 100, -3}, t[] = {3, 2, 1, 1};
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 4, u, it, t, NULL, &ds), RECSYS_OK);
    char seq[64];
    user_seq(ds, 0, seq, sizeof seq);
    assert_string_equal(seq, "-3 200 100");
    int64_t user;
    assert_int_equal(recsys_dataset_user_id(ds, "9", &user), RECSYS_OK);
    assert_int_equal(user, 1);
    recsys_dataset_free(ds);
}

/* ------------------------------------------------------------ synthetic */

static void test_synthetic(void **state)
{
    fixture *f = *state;
    recsys_opts_set_int(f->opts, "data.synthetic_users", 300);
    recsys_opts_set_int(f->opts, "data.synthetic_items", 100);
    recsys_opts_set_int(f->opts, "data.synthetic_length", 20);
    recsys_dataset *a, *b, *c;
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &a), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, "synthetic", f->opts, &b), RECSYS_OK);
    recsys_ctx_set_seed(f->ctx, 7);
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &c), RECSYS_OK);
    assert_int_equal(ds_stat(a, RECSYS_STAT_USERS), 300);
    assert_true(ds_stat(a, RECSYS_STAT_ITEMS) <= 100 && ds_stat(a, RECSYS_STAT_ITEMS) >= 50);
    assert_int_equal(ds_stat(a, RECSYS_STAT_HAS_TIME), 1);
    assert_true(ds_stat(a, RECSYS_STAT_MIN_LEN) >= 10);
    assert_true(ds_stat(a, RECSYS_STAT_MAX_LEN) <= 30);
    double mean = ds_stat(a, RECSYS_STAT_MEAN_LEN);
    assert_true(mean > 17 && mean < 23);
    assert_int_equal(ds_stat(a, RECSYS_STAT_EVAL_USERS), 300);
    /* Same seed, same data; another seed, other data. */
    assert_int_equal(a->n_events, b->n_events);
    assert_memory_equal(a->items, b->items, (size_t)a->n_events * sizeof *a->items);
    assert_memory_equal(a->times, b->times, (size_t)a->n_events * sizeof *a->times);
    assert_true(a->n_events != c->n_events ||
                memcmp(a->items, c->items, (size_t)a->n_events * sizeof *a->items) != 0);
    /* Times increase within each user. */
    for (int64_t u = 0; u < a->n_users; u++)
        for (int64_t k = a->offsets[u] + 1; k < a->offsets[u + 1]; k++)
            assert_true(a->times[k - 1] < a->times[k]);
    /* Sequential structure: the most frequent successor of an item follows
     * it far more often than the most popular item overall would. */
    int32_t I = a->n_items;
    int64_t *pairs = calloc((size_t)(I + 1) * (size_t)(I + 1), sizeof *pairs);
    int64_t *prev = calloc((size_t)I + 1, sizeof *prev);
    assert_non_null(pairs);
    assert_non_null(prev);
    for (int64_t u = 0; u < a->n_users; u++)
        for (int64_t k = a->offsets[u] + 1; k < a->offsets[u + 1]; k++) {
            pairs[(size_t)a->items[k - 1] * (size_t)(I + 1) + (size_t)a->items[k]]++;
            prev[a->items[k - 1]]++;
        }
    int64_t best_pair = 0, all = 0, best_item = 0;
    for (int32_t i = 1; i <= I; i++) {
        int64_t m = 0;
        for (int32_t j = 1; j <= I; j++)
            if (pairs[(size_t)i * (size_t)(I + 1) + (size_t)j] > m)
                m = pairs[(size_t)i * (size_t)(I + 1) + (size_t)j];
        best_pair += m;
        all += prev[i];
        if (a->item_count[i] > best_item) best_item = a->item_count[i];
    }
    double p_succ = (double)best_pair / (double)all;
    double p_pop = (double)best_item / (double)a->n_events;
    assert_true(p_succ > 0.3);
    assert_true(p_succ > 3 * p_pop);
    free(pairs);
    free(prev);
    recsys_dataset_free(a);
    recsys_dataset_free(b);
    recsys_dataset_free(c);
}

/* ------------------------------------------------------------ real data */

static void test_real_ml1m(void **state)
{
    fixture *f = *state;
    const char *p = DATA_DIR "/ml-1m/ml-1m.txt.gz";
    if (access(p, R_OK)) skip();
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 6040);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 3416);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 999611);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 0);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVAL_USERS), 6040);
    recsys_dataset_free(ds);
}

static void test_real_ml100k(void **state)
{
    fixture *f = *state;
    const char *p = DATA_DIR "/ml-100k/u.data.gz";
    if (access(p, R_OK)) skip();
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 943);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 1682);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 100000);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 1);
    for (int64_t u = 0; u < ds->n_users; u++)
        for (int64_t k = ds->offsets[u] + 1; k < ds->offsets[u + 1]; k++)
            assert_true(ds->times[k - 1] <= ds->times[k]);
    /* The first line of u.data is "196 242 3 881250949". */
    const char *name;
    assert_int_equal(recsys_dataset_user_name(ds, 0, &name), RECSYS_OK);
    assert_string_equal(name, "196");
    assert_true(ds->times[0] > 800000000); /* unix seconds, not ratings */
    recsys_dataset_free(ds);
}

static void test_real_beauty(void **state)
{
    fixture *f = *state;
    const char *p = DATA_DIR "/amazon-beauty/Beauty_items.seq.txt.gz";
    const char *t = DATA_DIR "/amazon-beauty/Beauty_times.seq.txt.gz";
    const char *plain = DATA_DIR "/amazon-beauty/Beauty.seq.txt.gz";
    if (access(p, R_OK) || access(t, R_OK) || access(plain, R_OK)) skip();
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, p, t, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 22363);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 12101);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 198502);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_HAS_TIME), 1);
    for (int64_t u = 0; u < ds->n_users; u++)
        for (int64_t k = ds->offsets[u] + 1; k < ds->offsets[u + 1]; k++)
            assert_true(ds->times[k - 1] <= ds->times[k]);
    recsys_dataset_free(ds);
    assert_int_equal(recsys_dataset_open(f->ctx, plain, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 22363);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_ITEMS), 12101);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 198502);
    recsys_dataset_free(ds);
}


/* ------------------------------------------------------------ hostile input */

/* Formats are decided from evidence, never guessed silently (issue: one line
 * in 240 without its timestamp loaded as a sequence file). */
static void test_auto_contradiction(void **state)
{
    fixture *f = *state;
    char text[8192] = "";
    for (int u = 0; u < 40; u++)
        for (int k = 0; k < 6; k++) {
            char line[64];
            if (u == 20 && k == 3) snprintf(line, sizeof line, "u%d i%d\n", u, k);
            else snprintf(line, sizeof line, "u%d i%d %d\n", u, (u + k) % 17, 1000 + k);
            strcat(text, line);
        }
    const char *p = write_file(f, "miss.txt", text);
    recsys_dataset *ds;
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    assert_null(ds);
    expect_loc(f, "miss.txt", 20 * 6 + 4, 1, "has 2 fields but line 1 has 3");
    /* Explicitly an interaction file: the same line is the error. */
    assert_int_equal(recsys_opts_set(f->opts, "data.format", "interactions"), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_E_PARSE);
    expect_loc(f, "miss.txt", 20 * 6 + 4, 0, "expected 3 fields");
    /* Mixed two- and three-field lines. */
    p = write_file(f, "mix.txt", "a x\nb y 5\na z\n");
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    expect_loc(f, "mix.txt", 2, 1, "has 3 fields but line 1 has 2");
}

static void test_bom_cr_header(void **state)
{
    fixture *f = *state;
    recsys_dataset *ds;
    const char *name;
    /* A UTF-8 BOM is not part of the first user id. */
    const char *p = write_file(f, "bom.txt", "\xEF\xBB\xBFu1 a 1\nu1 b 2\nu2 a 3\n");
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 2);
    assert_int_equal(recsys_dataset_user_name(ds, 0, &name), RECSYS_OK);
    assert_string_equal(name, "u1");
    recsys_dataset_free(ds);
    /* UTF-16 is refused with a reason. */
    p = write_bytes(f, "u16.txt", "\xFF\xFEu\0001\0", 6);
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    expect_loc(f, "u16.txt", 1, 1, "UTF-16");
    /* CR-only line ends (old Mac) are line ends. */
    p = write_file(f, "cr.txt", "u1 a 1\ru1 b 2\ru2 a 3\ru2 c 4\r");
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_USERS), 2);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 4);
    recsys_dataset_free(ds);
    /* Mixed CRLF and CR. */
    p = write_file(f, "crlf.txt", "u1 a 1\r\nu1 b 2\ru2 a 3\r\n");
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 3);
    recsys_dataset_free(ds);
    /* A header row is recognised and skipped ... */
    p = write_file(f, "hdr.csv", "user,item\nu1,a\nu1,b\nu2,a\n");
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 3);
    assert_int_equal(recsys_dataset_item_id(ds, "item", &(int32_t){0}), RECSYS_E_NOT_FOUND);
    recsys_dataset_free(ds);
    /* ... or read as data when data.header=false ... */
    assert_int_equal(recsys_opts_set(f->opts, "data.header", "false"), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 4);
    recsys_dataset_free(ds);
    /* ... and an unknown header with a time column is refused with a hint. */
    p = write_file(f, "hdr2.tsv", "who\twhat\twhen\nu1\ta\t1\nu1\tb\t2\n");
    assert_int_equal(recsys_opts_set(f->opts, "data.header", "auto"), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_E_PARSE);
    expect_loc(f, "hdr2.tsv", 1, 0, "data.header=true");
    assert_int_equal(recsys_opts_set(f->opts, "data.header", "true"), RECSYS_OK);
    assert_int_equal(recsys_dataset_open(f->ctx, p, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 2);
    recsys_dataset_free(ds);
    /* Sequence files: the header line of both files is skipped. */
    p = write_file(f, "sh.txt", "user items\nu1 a b c d e\n");
    const char *t = write_file(f, "sh_t.txt", "user times\nu1 5 4 3 2 1\n");
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, p, t, f->opts, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 5);
    recsys_dataset_free(ds);
    assert_int_equal(recsys_opts_set(f->opts, "data.header", "auto"), RECSYS_OK);
}

static void test_binary_and_special(void **state)
{
    fixture *f = *state;
    recsys_dataset *ds;
    /* NUL bytes: not a message about sequences but about the byte. */
    const char *p = write_bytes(f, "nul.txt", "u1 a 1\nu2 b\0002 2\n", 16);
    assert_int_equal(recsys_dataset_open(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    expect_loc(f, "nul.txt", 2, 5, "NUL byte");
    /* Trailing garbage after a gzip stream is an error; two members are fine. */
    p = write_gz(f, "g.gz", "u1 a 1\nu1 b 2\nu2 a 3\n");
    FILE *fp = fopen(p, "rb");
    unsigned char gz[256];
    size_t n = fread(gz, 1, sizeof gz, fp);
    fclose(fp);
    unsigned char two[600];
    memcpy(two, gz, n);
    memcpy(two + n, gz, n);
    const char *p2 = write_bytes(f, "two.gz", two, 2 * n);
    assert_int_equal(recsys_dataset_load(f->ctx, p2, NULL, &ds), RECSYS_OK);
    assert_int_equal(ds_stat(ds, RECSYS_STAT_EVENTS), 6);
    recsys_dataset_free(ds);
    memcpy(two + n, "garbage\n", 8);
    p2 = write_bytes(f, "junk.gz", two, n + 8);
    assert_int_equal(recsys_dataset_load(f->ctx, p2, NULL, &ds), RECSYS_E_IO);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "trailing data after the gzip stream"));
    /* Only regular files: a FIFO and /dev/zero are refused at once. */
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(recsys_dataset_open(f->ctx, fifo, NULL, &ds), RECSYS_E_IO);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "a FIFO"));
    assert_int_equal(recsys_dataset_load_sequences(f->ctx, fifo, NULL, NULL, &ds), RECSYS_E_IO);
    unlink(fifo);
    assert_int_equal(recsys_dataset_load(f->ctx, "/dev/zero", NULL, &ds), RECSYS_E_IO);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "character device"));
    assert_int_equal(recsys_dataset_open(f->ctx, f->dir, NULL, &ds), RECSYS_E_IO);
}

/* A 1 GiB line (a gzip of 1024 one-MiB members) is refused once it passes
 * the line limit, quickly and without growing the buffer past it. */
static void test_huge_line(void **state)
{
    fixture *f = *state;
    char *mib = malloc((size_t)1 << 20);
    memset(mib, 'a', (size_t)1 << 20);
    char *p = f->path[f->n_paths++];
    snprintf(p, 256, "%s/huge.gz", f->dir);
    gzFile g = gzopen(p, "wb1");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, mib, 1u << 20), 1 << 20);
    gzclose(g);
    FILE *fp = fopen(p, "rb");
    unsigned char *member = malloc(1 << 16);
    size_t n = fread(member, 1, 1 << 16, fp);
    fclose(fp);
    fp = fopen(p, "wb");
    for (int i = 0; i < 1024; i++) fwrite(member, 1, n, fp);
    fclose(fp);
    free(member);
    free(mib);
    recsys_dataset *ds;
    double t0 = rs_now();
    assert_int_equal(recsys_dataset_load(f->ctx, p, NULL, &ds), RECSYS_E_PARSE);
    expect_loc(f, "huge.gz", 1, 0, "longer than");
    assert_true(rs_now() - t0 < 20.0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_separators),     T(test_comments_blank_crlf), T(test_gzip),
        T(test_time_order_stable), T(test_four_columns),  T(test_id_maps),
        T(test_split_helpers),  T(test_min_counts),          T(test_malformed),
        T(test_empty_and_missing), T(test_null_args),     T(test_sequences),
        T(test_times_mismatch), T(test_long_line),           T(test_open_formats),
        T(test_from_arrays),    T(test_synthetic),           T(test_real_ml1m),
        T(test_real_ml100k),    T(test_real_beauty),         T(test_auto_contradiction),
        T(test_bom_cr_header),  T(test_binary_and_special),  T(test_huge_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
