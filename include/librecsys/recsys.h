/*
 * librecsys — sequential recommendation in C.
 *
 * Overview
 * --------
 * Every object is an opaque handle created by a `recsys_<object>_new` or
 * `..._load` call and released by `recsys_<object>_free` (free(NULL) is a
 * no-op). Every call returns a recsys_status: RECSYS_OK (0) or a negative
 * error code.
 *
 * Errors
 * ------
 * The human-readable detail of an error is kept in two places:
 *  - the recsys_ctx that the failing call used, directly or through the
 *    object it was given (recsys_ctx_errmsg, recsys_errmsg_copy), with
 *    file:line:column when the error is in an input file;
 *  - the calling thread's last error (recsys_last_error, recsys_last_errmsg),
 *    which every failing call sets, including the calls that take no ctx
 *    (recsys_dataset_stat, recsys_model_get, recsys_metrics_get, ...). It is
 *    thread-local: one thread never sees another thread's errors.
 * Every call that can fail clears both (its ctx's message and the thread's
 * last error) when it starts, so a message is never stale: after a failing
 * call it describes that call, after a successful one it is "".
 * Calls that cannot fail (getters returning a value, *_free, the version and
 * message calls) leave them alone.
 *
 * Ownership and lifetimes
 * -----------------------
 * Objects that keep a pointer to the ctx they were made with, which must
 * therefore outlive them: recsys_opts, recsys_trainer, recsys_session,
 * recsys_apen, recsys_perflaw. Objects that keep no ctx and may outlive it:
 * recsys_dataset, recsys_model, recsys_metrics. A model is reference-counted:
 * trainers and sessions hold a reference, so recsys_model_free may come in
 * any order. A trainer borrows its dataset (keep the dataset alive while the
 * trainer lives); every other call only reads its arguments during the call.
 * No *_free call uses the ctx, so objects may be freed in any order (as
 * garbage collectors do) as long as none is used after its ctx is freed.
 *
 * Callbacks
 * ---------
 * Log (recsys_ctx_set_log) and progress (recsys_trainer_set_progress)
 * callbacks run synchronously on the thread that made the library call that
 * triggers them (never on a library worker thread, never after that call
 * returns), so they may call back into the library with objects other than
 * the one being used by the running call. A callback must not unwind through
 * the library (no C++ exception or longjmp across it).
 *
 * Settings are passed as key/value pairs in a recsys_opts handle (the same
 * keys as the YAML config, e.g. "model.dim"), never as structs by value, so
 * the ABI survives new options and bindings need not mirror layouts.
 *
 * Minimal example:
 *
 *     recsys_ctx *ctx;  recsys_opts *o;  recsys_dataset *ds;
 *     recsys_model *m;  recsys_trainer *t;  recsys_metrics *res;
 *     recsys_ctx_new(&ctx);
 *     recsys_opts_new(ctx, &o);
 *     recsys_opts_load_yaml(o, "sasrec.yaml");
 *     recsys_dataset_load(ctx, "ml-1m.txt.gz", o, &ds);
 *     recsys_model_new(ctx, o, ds, &m);
 *     recsys_trainer_new(ctx, m, ds, o, &t);
 *     for (int e = 0; e < 10; e++) recsys_trainer_run_epoch(t, NULL);
 *     recsys_evaluate(ctx, m, ds, o, &res);
 *     ... recsys_metrics_get(res, "NDCG@10", &v) ...
 *
 * Thread safety
 * -------------
 * A recsys_ctx, and every object created from it, may be used by one thread
 * at a time; the library runs its own worker threads inside calls. Loaded
 * datasets and models are immutable and may be read (evaluated, scored) from
 * several threads at once if each thread has its own ctx and session.
 * Functions that are safe to call from any thread at any time say so.
 *
 * The library never prints, never calls exit() or abort(); it reports
 * through return codes, error messages and callbacks.
 */
#ifndef RECSYS_H
#define RECSYS_H

#include <stddef.h>
#include <stdint.h>

/*
 * RECSYS_API marks the exported functions. On Windows the library's own
 * sources are compiled with RECSYS_BUILDING defined (dllexport), users get
 * dllimport, and users of the static library define RECSYS_STATIC. Elsewhere
 * it is default ELF visibility (the library is built with hidden visibility).
 * Define RECSYS_API yourself (e.g. empty) to override.
 */
#ifndef RECSYS_API
#  if defined(_WIN32) || defined(__CYGWIN__)
#    if defined(RECSYS_STATIC)
#      define RECSYS_API
#    elif defined(RECSYS_BUILDING)
#      define RECSYS_API __declspec(dllexport)
#    else
#      define RECSYS_API __declspec(dllimport)
#    endif
#  elif defined(__GNUC__) && __GNUC__ >= 4
#    define RECSYS_API __attribute__((visibility("default")))
#  else
#    define RECSYS_API
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */

#define RECSYS_VERSION_MAJOR 0
#define RECSYS_VERSION_MINOR 2
#define RECSYS_VERSION_PATCH 0
#define RECSYS_VERSION_NUMBER \
    (RECSYS_VERSION_MAJOR * 10000 + RECSYS_VERSION_MINOR * 100 + RECSYS_VERSION_PATCH)
#define RECSYS_VERSION_STRING "0.2.0"

/** Version of the loaded library, as RECSYS_VERSION_NUMBER. Thread-safe. */
RECSYS_API int recsys_version_number(void);
/** Version of the loaded library as a static string. Thread-safe. */
RECSYS_API const char *recsys_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes. Values are pinned and only ever appended. An enum (not
 * macros) so that cffi, cgo and bindgen read them as integer constants.    */

typedef int recsys_status; /* one of enum recsys_status_code */
enum recsys_status_code {
    RECSYS_OK            = 0,
    RECSYS_E_INVALID     = -1,  /* bad argument: NULL, wrong shape, out of range */
    RECSYS_E_NOMEM       = -2,  /* allocation failed */
    RECSYS_E_IO          = -3,  /* file cannot be opened, read or written */
    RECSYS_E_PARSE       = -4,  /* malformed input or config file (see location) */
    RECSYS_E_FORMAT      = -5,  /* checkpoint truncated, corrupted or of unknown version */
    RECSYS_E_STATE       = -6,  /* call made in the wrong order / object unusable */
    RECSYS_E_UNSUPPORTED = -7,  /* feature not available in this build or on this CPU */
    RECSYS_E_NUMERIC     = -8,  /* NaN or infinity met in data or training */
    RECSYS_E_ABORTED     = -9,  /* a callback asked to stop */
    RECSYS_E_NOT_FOUND   = -10, /* unknown id, key or name */
    RECSYS_E_INTERNAL    = -11  /* bug in librecsys: please report */
};

/** Static name of a status, e.g. "RECSYS_E_PARSE". Thread-safe. */
RECSYS_API const char *recsys_status_str(recsys_status s);

/**
 * Check that the loaded library can serve a caller written against the
 * header of version `version_number` (pass RECSYS_VERSION_NUMBER): same
 * major version, and a library at least as new. Bindings call it at load.
 * @return RECSYS_OK or RECSYS_E_UNSUPPORTED (message in the thread's last
 * error). Thread-safe.
 */
RECSYS_API recsys_status recsys_check_version(int version_number);
#define RECSYS_CHECK_VERSION() recsys_check_version(RECSYS_VERSION_NUMBER)

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                            */

typedef struct recsys_ctx       recsys_ctx;
typedef struct recsys_opts      recsys_opts;
typedef struct recsys_dataset   recsys_dataset;
typedef struct recsys_model     recsys_model;
typedef struct recsys_trainer   recsys_trainer;
typedef struct recsys_session   recsys_session;
typedef struct recsys_metrics   recsys_metrics;
typedef struct recsys_apen      recsys_apen;
typedef struct recsys_perflaw   recsys_perflaw;
typedef struct recsys_adapter   recsys_adapter;
typedef struct recsys_adapter_store recsys_adapter_store;

/* ------------------------------------------------------------------------ */
/* Context: thread pool, RNG seed, kernel table, last error, callbacks.      */

/** Log levels passed to the log callback. */
#define RECSYS_LOG_ERROR 0
#define RECSYS_LOG_WARN  1
#define RECSYS_LOG_INFO  2
#define RECSYS_LOG_DEBUG 3
/** Log callback: runs on the thread that made the logging call; message is
 * valid during the callback only. */
typedef void (*recsys_log_fn)(void *user_data, int level, const char *message);

/**
 * Create a context. The thread pool starts with one worker per online CPU
 * (see recsys_ctx_set_threads) and the kernel table is filled for the best
 * ISA this CPU and OS support, capped by the environment variable
 * RECSYS_MAX_ISA=scalar|avx2|avx512 when set.
 * @param[out] out  receives the new context (NULL on failure).
 * @return RECSYS_OK, RECSYS_E_INVALID (out NULL), RECSYS_E_NOMEM.
 * Thread safety: any thread.
 */
RECSYS_API recsys_status recsys_ctx_new(recsys_ctx **out);
/**
 * Free a context. NULL is a no-op. The objects that keep their ctx (opts,
 * trainers, sessions, ApEn estimators, fitters) must be freed first;
 * datasets, models and metrics need not be (see "Ownership" above).
 */
RECSYS_API void recsys_ctx_free(recsys_ctx *ctx);

/**
 * Message of the last error on this context ("" when none: every call that
 * can fail clears it when it starts). The string is owned by the ctx and
 * valid until the next call that uses it. A NULL ctx gives a static message.
 */
RECSYS_API const char *recsys_ctx_errmsg(const recsys_ctx *ctx);
/**
 * Copy the message of the last error on ctx, or with a NULL ctx the calling
 * thread's last error message, into buf (size bytes, always NUL-terminated
 * when size > 0; truncated if too small; buf may be NULL when size is 0).
 * @return the length of the whole message (excluding the NUL), as snprintf:
 * a result >= size means it was truncated. Thread-safe for a NULL ctx.
 */
RECSYS_API size_t recsys_errmsg_copy(const recsys_ctx *ctx, char *buf, size_t size);
/**
 * Status of the last call made on the calling thread that failed, or
 * RECSYS_OK when the thread's last call that can fail succeeded. Set by
 * every call, whether or not it takes a ctx. Thread-local; thread-safe.
 */
RECSYS_API recsys_status recsys_last_error(void);
/**
 * Message of the calling thread's last error ("" when none). Thread-local:
 * the string belongs to the calling thread and is valid until that thread's
 * next library call. Thread-safe.
 */
RECSYS_API const char *recsys_last_errmsg(void);
/**
 * Location of the last error when it was in an input file: file name (owned
 * by the ctx), 1-based line and column (0 when unknown). Any out pointer may
 * be NULL. @return RECSYS_OK, or RECSYS_E_NOT_FOUND when the last error had
 * no location.
 */
RECSYS_API recsys_status recsys_ctx_error_location(const recsys_ctx *ctx, const char **file,
                                                   int *line, int *column);

/** Number of worker threads used inside calls (>= 1; 0 = online CPUs). */
RECSYS_API recsys_status recsys_ctx_set_threads(recsys_ctx *ctx, int n_threads);
RECSYS_API int recsys_ctx_threads(const recsys_ctx *ctx);

/** Seed used by objects created from this ctx afterwards (default 42). */
RECSYS_API recsys_status recsys_ctx_set_seed(recsys_ctx *ctx, uint64_t seed);

/**
 * Cap the instruction set used by kernels: "scalar", "avx2", "avx512"
 * ("best" lifts the cap). Capping above what the CPU supports gives the best
 * supported set. Objects created afterwards use the new table.
 * @return RECSYS_OK or RECSYS_E_INVALID (unknown name).
 */
RECSYS_API recsys_status recsys_ctx_set_max_isa(recsys_ctx *ctx, const char *isa);
/** Name of the ISA the kernel table uses now: "scalar", "avx2" or "avx512". */
RECSYS_API const char *recsys_ctx_isa(const recsys_ctx *ctx);

/** Kernel ids for recsys_ctx_kernel_name. Appended only. */
#define RECSYS_KERNEL_GEMM       0
#define RECSYS_KERNEL_ATTENTION  1
#define RECSYS_KERNEL_LAYERNORM  2
#define RECSYS_KERNEL_ADAM       3
#define RECSYS_KERNEL_DOT        4
#define RECSYS_KERNEL_HSTU_ATTENTION 5
#define RECSYS_KERNEL_POINTWISE  6   /* dropout, ReLU, SiLU, embedding gather/scatter */
#define RECSYS_KERNEL_COUNT      7
/** Name of the variant chosen for a kernel, e.g. "gemm_avx512"; NULL if unknown id. */
RECSYS_API const char *recsys_ctx_kernel_name(const recsys_ctx *ctx, int kernel);

/**
 * GEMM backend: "native" (the library's own kernels, default) or "onednn"
 * (dnnl_sgemm, when built with oneDNN). The environment variable
 * RECSYS_GEMM=onednn selects it at ctx creation.
 * @return RECSYS_OK, RECSYS_E_INVALID, RECSYS_E_UNSUPPORTED (not built in).
 */
RECSYS_API recsys_status recsys_ctx_set_gemm_backend(recsys_ctx *ctx, const char *backend);

/**
 * bf16 compute mode (AVX-512-BF16, `vdpbf16ps`): GEMM inputs rounded to
 * bfloat16 with fp32 accumulation; weights, optimiser state and the other
 * kernels (attention, layer norm) stay fp32. @return RECSYS_E_UNSUPPORTED
 * when the CPU (or the ISA cap) does not allow it.
 */
RECSYS_API recsys_status recsys_ctx_set_bf16(recsys_ctx *ctx, int enable);

/**
 * Route the library's log lines to a callback (NULL to drop them). The
 * callback runs on the calling thread, inside the call that logs. Lines
 * (the text may change; the levels and the events logged stay):
 * - INFO when the callback is installed, and when recsys_ctx_set_max_isa or
 *   recsys_ctx_set_gemm_backend changes them: the kernels in use
 *   ("kernels avx512 (GEMM gemm_avx512, attention ...), 4 threads, bf16 off");
 * - INFO for every dataset made: source (path, "synthetic" or "arrays"),
 *   users, items, events; WARN for suspicious data: events that repeat the
 *   user's previous item, users with too few events to be evaluated;
 * - INFO for every model created or loaded: type, parameters, sizes;
 * - INFO for every trainer: loss, optimiser, batch, epochs, threads, bf16,
 *   kernels.
 */
RECSYS_API recsys_status recsys_ctx_set_log(recsys_ctx *ctx, recsys_log_fn fn, void *user_data);

/**
 * Create a context whose pool never has more than n_threads threads (the
 * calling thread counts as one: n_threads = 1 starts no thread at all).
 * Use this in services that create a ctx per request thread. (recsys_ctx_new
 * sizes its pool to the online CPUs but starts the workers only at the first
 * call that runs in parallel.) @return RECSYS_OK, RECSYS_E_INVALID (n_threads
 * outside 1..1024 or out NULL), RECSYS_E_NOMEM. Thread safety: any thread.
 */
RECSYS_API recsys_status recsys_ctx_new_with_threads(int n_threads, recsys_ctx **out);

/**
 * A thread pool that several contexts share (one per service, say). Each
 * call running on a sharing ctx uses the pool's workers when they are idle
 * and runs on its own calling thread when another ctx has them busy, so the
 * process never has more than n_threads - 1 worker threads however many
 * contexts exist. The pool is reference-counted: contexts keep it alive.
 */
typedef struct recsys_threadpool recsys_threadpool;
/** @return RECSYS_OK, RECSYS_E_INVALID (n_threads outside 1..1024), RECSYS_E_NOMEM. */
RECSYS_API recsys_status recsys_threadpool_new(int n_threads, recsys_threadpool **out);
/** Drop the caller's reference (contexts keep theirs). NULL is a no-op. */
RECSYS_API void recsys_threadpool_free(recsys_threadpool *pool);
/**
 * Create a context that runs on a shared pool. recsys_ctx_set_threads on it
 * gives RECSYS_E_STATE. Thread safety: any thread.
 */
RECSYS_API recsys_status recsys_ctx_new_shared(recsys_threadpool *pool, recsys_ctx **out);

/* ------------------------------------------------------------------------ */
/* Options: "section.key" -> value, the same keys as the YAML config.         */

/** Create an empty options set (every key has its documented default). */
RECSYS_API recsys_status recsys_opts_new(recsys_ctx *ctx, recsys_opts **out);
RECSYS_API void recsys_opts_free(recsys_opts *opts);
/**
 * Set a key from text, as `recsys train --set key=value` does. The key must
 * be known and the value valid for it.
 * @return RECSYS_OK, RECSYS_E_NOT_FOUND (unknown key), RECSYS_E_INVALID (bad value).
 */
RECSYS_API recsys_status recsys_opts_set(recsys_opts *opts, const char *key, const char *value);
RECSYS_API recsys_status recsys_opts_set_int(recsys_opts *opts, const char *key, int64_t value);
RECSYS_API recsys_status recsys_opts_set_float(recsys_opts *opts, const char *key, double value);
/**
 * Read a key's current value (or default) as text. *value is owned by opts,
 * valid until the key is set again or opts freed.
 */
RECSYS_API recsys_status recsys_opts_get(const recsys_opts *opts, const char *key, const char **value);
RECSYS_API recsys_status recsys_opts_get_int(const recsys_opts *opts, const char *key, int64_t *value);
RECSYS_API recsys_status recsys_opts_get_float(const recsys_opts *opts, const char *key, double *value);
/**
 * Number of known keys and the i-th key name (for listing, docs and
 * bindings). The list is the same for every opts; opts may be NULL.
 */
RECSYS_API int recsys_opts_count(const recsys_opts *opts);
RECSYS_API const char *recsys_opts_key(const recsys_opts *opts, int i);

/** Option types (recsys_opt_info.type). Appended only. */
#define RECSYS_OPT_STRING 0
#define RECSYS_OPT_INT    1
#define RECSYS_OPT_FLOAT  2
#define RECSYS_OPT_ENUM   3
#define RECSYS_OPT_BOOL   4
#define RECSYS_OPT_INT_LIST 5 /* comma-separated integers, each within min .. max */

/**
 * Description of one option key, filled by recsys_opts_describe. Strings
 * are static (valid for the life of the process). Fields are only ever
 * appended: set struct_size to sizeof(recsys_opt_info) before the call, and
 * the library fills that many bytes at most (no more than it knows).
 */
typedef struct recsys_opt_info {
    int struct_size;            /* in: sizeof(recsys_opt_info) of the caller;
                                   out: the bytes filled (the smaller of the two sizes) */
    int type;                   /* RECSYS_OPT_STRING, _INT, _FLOAT, _ENUM or _BOOL */
    const char *key;            /* "section.key" */
    const char *type_name;      /* "string", "int", "float", "enum", "bool" or "int list" */
    const char *default_value;  /* the default as text, as recsys_opts_get gives it */
    const char *choices;        /* enum: the allowed words, '|'-separated; else NULL */
    double min;                 /* int and float: inclusive lower bound; else 0 */
    double max;                 /* int and float: inclusive upper bound; else 0 */
    const char *allowed;        /* NULL, or a phrase on the allowed values where type,
                                   bounds and choices do not say it all (strings) */
    const char *doc;            /* one line of documentation (markdown) */
} recsys_opt_info;

/**
 * Describe key i (0 <= i < recsys_opts_count(NULL)): type, default, bounds
 * or choices, and its documentation, as docs/CONFIG.md lists them. For
 * bindings and help texts; needs no ctx.
 * @return RECSYS_OK, RECSYS_E_INVALID (info NULL or struct_size too small),
 * RECSYS_E_NOT_FOUND (i out of range).
 * Thread safety: any thread.
 */
RECSYS_API recsys_status recsys_opts_describe(int i, recsys_opt_info *info);
/**
 * Load a YAML config file into opts: a mapping of sections (data, model,
 * trainer, eval) each mapping keys to scalars. Unknown keys and bad values
 * are RECSYS_E_PARSE with file:line:column. On error opts is unchanged.
 */
RECSYS_API recsys_status recsys_opts_load_yaml(recsys_opts *opts, const char *path);
/** Same, from a string in memory (name is used in messages). */
RECSYS_API recsys_status recsys_opts_load_yaml_string(recsys_opts *opts, const char *yaml,
                                                       size_t len, const char *name);

/* ------------------------------------------------------------------------ */
/* Datasets: per-user chronological item sequences with dense ids.           */

/**
 * Load an interaction file: one `user item [timestamp] [rating]` per line,
 * fields separated by tab, space, comma or "::" (detected from the first
 * data line); `.gz` files are read directly. Only regular files are read;
 * a UTF-8 BOM, CR line ends and a header row (data.header) are handled. Users' events are ordered by
 * timestamp when present (stable), then the leave-one-out split is made.
 * Options used (may be NULL): data.min_user_count, data.min_item_count.
 * On error nothing is returned; the message names file:line.
 * @return RECSYS_OK, RECSYS_E_IO, RECSYS_E_PARSE, RECSYS_E_NOMEM, RECSYS_E_INVALID.
 */
RECSYS_API recsys_status recsys_dataset_load(recsys_ctx *ctx, const char *path,
                                             const recsys_opts *opts, recsys_dataset **out);
/**
 * Load a sequence file: one `user i1 i2 ...` per line (space or tab), with
 * an optional timestamp file of the same layout (times_path may be NULL).
 */
RECSYS_API recsys_status recsys_dataset_load_sequences(recsys_ctx *ctx, const char *path,
                                                       const char *times_path,
                                                       const recsys_opts *opts,
                                                       recsys_dataset **out);
/**
 * Build a dataset from arrays of n events (external ids; times may be NULL).
 */
RECSYS_API recsys_status recsys_dataset_from_arrays(recsys_ctx *ctx, size_t n,
                                                    const int64_t *users, const int64_t *items,
                                                    const int64_t *times,
                                                    const recsys_opts *opts,
                                                    recsys_dataset **out);
/**
 * The embedded default: a synthetic log of users walking a sparse item
 * transition graph with noise and popularity skew. Options: data.synthetic_users,
 * data.synthetic_items, data.synthetic_length, data.synthetic_noise, and the ctx seed.
 */
RECSYS_API recsys_status recsys_dataset_synthetic(recsys_ctx *ctx, const recsys_opts *opts,
                                                  recsys_dataset **out);
/**
 * Open a dataset by path as the CLI does: "synthetic" for the embedded
 * default, a sequence file when data.format is "sequences" (or the file is
 * detected as one), otherwise an interaction file.
 */
RECSYS_API recsys_status recsys_dataset_open(recsys_ctx *ctx, const char *path,
                                             const recsys_opts *opts, recsys_dataset **out);
/** Free a dataset (NULL is a no-op); trainers borrowing it must be freed first. */
RECSYS_API void recsys_dataset_free(recsys_dataset *ds);

/** Statistic ids for recsys_dataset_stat. */
#define RECSYS_STAT_USERS        0   /* users kept */
#define RECSYS_STAT_ITEMS        1   /* items kept (dense ids 1..items) */
#define RECSYS_STAT_EVENTS       2   /* interactions kept */
#define RECSYS_STAT_HAS_TIME     3   /* 1 when timestamps were loaded */
#define RECSYS_STAT_MIN_LEN      4
#define RECSYS_STAT_MAX_LEN      5
#define RECSYS_STAT_MEAN_LEN     6
#define RECSYS_STAT_DENSITY      7   /* events / (users * items) */
#define RECSYS_STAT_EVAL_USERS   8   /* users with a validation and test item (>= 4 events) */
#define RECSYS_STAT_COUNT        9
/** Read one statistic. @return RECSYS_OK or RECSYS_E_INVALID. Thread-safe (read-only). */
RECSYS_API recsys_status recsys_dataset_stat(const recsys_dataset *ds, int stat, double *value);

/**
 * A user's full chronological sequence of dense item ids (1..items).
 * *items points into the dataset (borrowed, valid while ds lives); *times
 * (may be NULL) receives timestamps or NULL when the data has none.
 */
RECSYS_API recsys_status recsys_dataset_user_items(const recsys_dataset *ds, int64_t user,
                                                   const int32_t **items,
                                                   const int64_t **times, size_t *n);
/** External id (as text in the file) of a dense user / item id. */
RECSYS_API recsys_status recsys_dataset_user_name(const recsys_dataset *ds, int64_t user,
                                                  const char **name);
/** External id of a dense item id (1..items); *name is owned by ds. */
RECSYS_API recsys_status recsys_dataset_item_name(const recsys_dataset *ds, int32_t item,
                                                  const char **name);
/** Dense id of an external item id; RECSYS_E_NOT_FOUND when unknown. */
RECSYS_API recsys_status recsys_dataset_item_id(const recsys_dataset *ds, const char *name,
                                                int32_t *item);
/** Dense id of an external user id; RECSYS_E_NOT_FOUND when unknown. */
RECSYS_API recsys_status recsys_dataset_user_id(const recsys_dataset *ds, const char *name,
                                                int64_t *user);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */

/**
 * Create a freshly initialised model for the catalogue of ds. Keys used:
 * model.type (sasrec|hstu), model.max_len, model.dim, model.blocks,
 * model.heads, model.dropout, model.norm (original|post|pre), ...
 */
RECSYS_API recsys_status recsys_model_new(recsys_ctx *ctx, const recsys_opts *opts,
                                          const recsys_dataset *ds, recsys_model **out);
/** Drop a reference (sessions and trainers hold their own). NULL is a no-op. */
RECSYS_API void recsys_model_free(recsys_model *model);
/** Number of trainable parameters. */
RECSYS_API recsys_status recsys_model_n_params(const recsys_model *model, int64_t *n);
/**
 * Size of the model's catalogue: items have dense ids 1..*n, and
 * recsys_session_score needs *n + 1 floats. Thread-safe (read-only).
 */
RECSYS_API recsys_status recsys_model_n_items(const recsys_model *model, int32_t *n);
/** Read one of the model's config keys (e.g. "model.dim") as text. */
RECSYS_API recsys_status recsys_model_get(const recsys_model *model, const char *key,
                                          const char **value);
/**
 * Save config + weights to path, atomically (temp file, fsync, rename, then
 * fsync of the directory): an existing file is replaced whole or not at all.
 * A symlink is followed to its target; only a regular file (or nothing) is
 * replaced, keeping its permissions; new files get the umask's. Stale temp
 * files of killed saves of the same target are removed.
 * Format in docs/CHECKPOINT.md: versioned, CRC-32C checked. Errors are
 * recorded in ctx. @return RECSYS_OK, RECSYS_E_INVALID, RECSYS_E_IO, RECSYS_E_NOMEM.
 */
RECSYS_API recsys_status recsys_model_save(recsys_ctx *ctx, const recsys_model *model,
                                           const char *path);
/** Load a saved model; truncated or corrupted files give RECSYS_E_FORMAT. */
RECSYS_API recsys_status recsys_model_load(recsys_ctx *ctx, const char *path, recsys_model **out);

/** Model families, as recsys_model_info.type. */
#define RECSYS_MODEL_SASREC 0
#define RECSYS_MODEL_HSTU   1
/**
 * What a loaded model says about itself. Extensible: set struct_size to
 * sizeof(recsys_model_info) before the call; the library fills at most that
 * many bytes (fields added later are appended).
 */
typedef struct recsys_model_info {
    size_t   struct_size;
    int      type;             /* RECSYS_MODEL_SASREC or RECSYS_MODEL_HSTU */
    int32_t  n_items;          /* catalogue size: dense item ids 1..n_items */
    int      max_len;          /* longest history used (older items are dropped) */
    int      dim;              /* embedding size: user and item vectors have dim floats */
    int      blocks;
    int      heads;
    int      time_bias;        /* 1: the model uses timestamps (pass times in requests) */
    int      l2norm;           /* 1: scores are cosine (item vectors are normalised) */
    int      has_item_ids;     /* 1: external item ids are stored; 0: ids are "1".."n_items" */
    int      data_has_time;    /* the training data had timestamps */
    int64_t  n_params;
    int64_t  n_users;          /* users of the training data, -1 when unknown */
    uint64_t data_fingerprint; /* hash of the training data (ids, sequences, times); 0 unknown */
    int      positions_from_start; /* 1: model.positions = start: user states cache keys and
                                      values (recsys_session_topk_state) */
} recsys_model_info;
/**
 * Describe a model. @return RECSYS_OK or RECSYS_E_INVALID (NULL, struct_size
 * too small). Thread-safe (read-only).
 */
RECSYS_API recsys_status recsys_model_info_get(const recsys_model *model, recsys_model_info *info);
/**
 * Dense id (1..n_items) of an external item id, without the dataset: models
 * made by recsys_model_new keep the dataset's ids and checkpoints (version
 * 2) store them. A model without stored ids (a version 1 checkpoint) maps
 * "1".."n_items". @return RECSYS_OK, RECSYS_E_NOT_FOUND, RECSYS_E_INVALID.
 * Thread-safe (read-only).
 */
RECSYS_API recsys_status recsys_model_item_id(const recsys_model *model, const char *external_id,
                                              int32_t *item);
/** External id of a dense item id; *name is owned by the model. Thread-safe. */
RECSYS_API recsys_status recsys_model_item_name(const recsys_model *model, int32_t item,
                                                const char **name);
/**
 * Zero-copy view of the item embedding table: *n_rows = n_items+1 rows of
 * *dim floats, row 0 the padding item. Borrowed: valid while the model lives
 * (and changes if it is trained). Thread-safe.
 */
RECSYS_API recsys_status recsys_model_item_table(const recsys_model *model, const float **table,
                                                 int32_t *n_rows, int *dim);
/**
 * The item vectors scores are dot products with (for an ANN index): the item
 * table itself, or for models with l2norm its L2-normalised copy, built once
 * and kept by the model. score(user, i) = recsys_session_user_vector · row i.
 * Borrowed: valid until the model is freed or trained further.
 * Thread-safe (the copy is built under a lock).
 */
RECSYS_API recsys_status recsys_model_item_vectors(recsys_model *model, const float **vectors,
                                                   int32_t *n_rows, int *dim);

/* Tensors by name: import and export of weights trained elsewhere (the
 * safetensors files and foreign names are handled by `recsys import` /
 * `recsys export`, docs/SERVING.md). float32 only, the library's layout:
 * per-block tensors stacked over blocks, linear weights [out x in]. */
#define RECSYS_TENSOR_MAX_DIMS 4
/**
 * A model with the config of opts (model.* keys) for a catalogue of n_items
 * items (ids "1".."n_items"), parameters initialised as recsys_model_new
 * does, no dataset needed. Without data, model.time_bias auto means off.
 */
RECSYS_API recsys_status recsys_model_new_blank(recsys_ctx *ctx, const recsys_opts *opts,
                                                int32_t n_items, recsys_model **out);
/** Number of named parameter tensors. Thread-safe. */
RECSYS_API recsys_status recsys_model_tensor_count(const recsys_model *model, int *n);
/**
 * Name, shape and size of tensor i (0 <= i < count): *name is static, shape
 * (may be NULL) receives RECSYS_TENSOR_MAX_DIMS values (unused dims 0),
 * *numel (may be NULL) the float count. Thread-safe.
 */
RECSYS_API recsys_status recsys_model_tensor_info(const recsys_model *model, int i,
                                                  const char **name, int *ndim, int64_t *shape,
                                                  int64_t *numel);
/** Copy tensor `name` (n must be its numel) into data. @return RECSYS_E_NOT_FOUND for an unknown name. */
RECSYS_API recsys_status recsys_model_get_tensor(recsys_ctx *ctx, const recsys_model *model,
                                                 const char *name, float *data, size_t n);
/**
 * Overwrite tensor `name` with n floats (n must be its numel; values must be
 * finite). Only on a model nothing else holds (no session, no trainer):
 * RECSYS_E_INVALID otherwise.
 */
RECSYS_API recsys_status recsys_model_set_tensor(recsys_ctx *ctx, recsys_model *model,
                                                 const char *name, const float *data, size_t n);
/** Set the external item ids (ids[0] is item 1; n == n_items; unique, non-empty). */
RECSYS_API recsys_status recsys_model_set_item_ids(recsys_ctx *ctx, recsys_model *model,
                                                   const char *const *ids, int32_t n);

/* ------------------------------------------------------------------------ */
/* Training                                                                  */

/** Progress event passed to the progress callback. */
typedef struct recsys_progress {
    int    struct_size;      /* sizeof(recsys_progress) of the library */
    int    epoch;            /* 1-based */
    int    epochs;
    int64_t step;            /* batch within the epoch, 1-based */
    int64_t steps;           /* batches in the epoch */
    double loss;             /* running mean loss of the epoch */
    double elapsed_seconds;  /* since the epoch began */
    double samples_per_second;
} recsys_progress;
/** Return non-zero to stop training (the call then returns RECSYS_E_ABORTED).
 * Runs on the thread that called recsys_trainer_run_epoch, between batches;
 * p is valid during the callback only. It must not use the trainer. */
typedef int (*recsys_progress_fn)(void *user_data, const recsys_progress *p);

/**
 * Create a trainer for model on ds's training split. Keys: trainer.lr,
 * trainer.batch_size, trainer.epochs, trainer.seed, trainer.threads,
 * trainer.weight_decay, trainer.loss (bce|sampled_softmax), ...
 * The trainer holds a reference to model and borrows ds (keep it alive).
 *
 * The trainer does not change ctx: trainer.threads (when > 0 and not the
 * ctx's count, the trainer starts its own worker threads) and trainer.bf16
 * apply to the trainer's own calls only; afterwards, and inside the
 * progress callback, ctx has its own settings. With trainer.bf16 false the
 * trainer uses the ctx's bf16 mode. @return RECSYS_E_UNSUPPORTED when
 * trainer.bf16 is set and the CPU (or the ISA cap) does not allow it.
 */
RECSYS_API recsys_status recsys_trainer_new(recsys_ctx *ctx, recsys_model *model,
                                            const recsys_dataset *ds, const recsys_opts *opts,
                                            recsys_trainer **out);
/** Free a trainer and drop its model reference. NULL is a no-op. */
RECSYS_API void recsys_trainer_free(recsys_trainer *t);
RECSYS_API recsys_status recsys_trainer_set_progress(recsys_trainer *t, recsys_progress_fn fn,
                                                     void *user_data);
/** Run one epoch over the training split; *mean_loss (may be NULL) receives its mean loss. */
RECSYS_API recsys_status recsys_trainer_run_epoch(recsys_trainer *t, double *mean_loss);
/** Epochs completed so far. */
RECSYS_API int recsys_trainer_epoch(const recsys_trainer *t);
/**
 * The evaluation schedule of trainer.eval_every = N: 1 when N > 0 and the
 * epochs completed so far are a multiple of N or reach trainer.epochs, else
 * 0 (also for NULL and before the first epoch). The trainer does not
 * evaluate by itself; callers that report validation metrics during
 * training (`recsys train`) ask this after each recsys_trainer_run_epoch.
 */
RECSYS_API int recsys_trainer_eval_due(const recsys_trainer *t);
/**
 * Save a training checkpoint: the model (loadable with recsys_model_load)
 * plus the optimiser state, epoch and RNG state, atomically. With
 * trainer.checkpoint set, recsys_trainer_run_epoch does this itself every
 * trainer.checkpoint_every epochs.
 */
RECSYS_API recsys_status recsys_trainer_save_checkpoint(recsys_trainer *t, const char *path);
/**
 * Continue from a training checkpoint: restores weights, optimiser state,
 * epoch counter and RNG so the run proceeds as if never interrupted.
 * RECSYS_E_FORMAT when the file has no trainer state or does not fit the model.
 */
RECSYS_API recsys_status recsys_trainer_resume(recsys_trainer *t, const char *path);

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */

/**
 * Evaluate model on ds. Keys: eval.protocol (sampled|full), eval.split
 * (valid|test), eval.negatives (100), eval.exclude_history (full ranking),
 * eval.ks ("1,5,10,20,50"). Sampled negatives use trainer.seed.
 * *out holds HR@K, NDCG@K, MRR and "users". A non-finite score is
 * RECSYS_E_NUMERIC (no metrics); data where no user has a held-out target,
 * or (sampled protocol) where every such user has seen every item, is
 * RECSYS_E_INVALID. Sampled negatives are drawn only from unseen items.
 * Buffers over resources.max_memory: RECSYS_E_NOMEM before allocating.
 */
RECSYS_API recsys_status recsys_evaluate(recsys_ctx *ctx, const recsys_model *model,
                                         const recsys_dataset *ds, const recsys_opts *opts,
                                         recsys_metrics **out);
/** Popularity baseline under the same protocol (rank items by training count). */
RECSYS_API recsys_status recsys_evaluate_popularity(recsys_ctx *ctx, const recsys_dataset *ds,
                                                    const recsys_opts *opts,
                                                    recsys_metrics **out);
/** Free a metrics object. NULL is a no-op. */
RECSYS_API void recsys_metrics_free(recsys_metrics *m);
/** Number of named values and the i-th name / value. */
RECSYS_API int recsys_metrics_count(const recsys_metrics *m);
RECSYS_API const char *recsys_metrics_name(const recsys_metrics *m, int i);
RECSYS_API double recsys_metrics_value(const recsys_metrics *m, int i);
/** Value by name, e.g. "NDCG@10"; RECSYS_E_NOT_FOUND if absent. */
RECSYS_API recsys_status recsys_metrics_get(const recsys_metrics *m, const char *name,
                                            double *value);

/* ------------------------------------------------------------------------ */
/* Serving                                                                   */

/**
 * A scoring session: scratch space for one serving thread. Holds a reference
 * to model. Sessions on the same model may run in parallel threads.
 */
RECSYS_API recsys_status recsys_session_new(recsys_ctx *ctx, recsys_model *model,
                                            recsys_session **out);
/** Free a session and drop its model reference. NULL is a no-op. */
RECSYS_API void recsys_session_free(recsys_session *s);
/**
 * Score every item (dense ids 1..n_items) after a history of dense item ids.
 * scores must hold n_items+1 floats (index 0, padding, gets -inf).
 * @return RECSYS_OK, RECSYS_E_INVALID, RECSYS_E_NOT_FOUND (history id out of
 * range), RECSYS_E_NUMERIC when a score is NaN or infinite (weights too large).
 */
RECSYS_API recsys_status recsys_session_score(recsys_session *s, const int32_t *history,
                                              size_t n_history, float *scores, size_t n_scores);
/**
 * Top-k items after a history, best first, excluding the history items when
 * exclude_history is non-zero. items/scores must hold k entries.
 * RECSYS_E_NUMERIC as recsys_session_score.
 */
RECSYS_API recsys_status recsys_session_topk(recsys_session *s, const int32_t *history,
                                             size_t n_history, int k, int exclude_history,
                                             int32_t *items, float *scores);

/**
 * One scoring request. Extensible: set struct_size to sizeof(recsys_request)
 * (RECSYS_REQUEST_INIT does); fields added later are appended and read only
 * when struct_size covers them. All pointers are borrowed for the call.
 */
typedef struct recsys_request {
    size_t         struct_size;
    const int32_t *history;         /* dense item ids 1..n_items, oldest first */
    size_t         n_history;       /* the last max_len are used */
    const int64_t *times;           /* n_history timestamps (the training data's unit), or NULL */
    int            k;               /* top-K size for the topk calls */
    int            exclude_history; /* non-zero: never recommend a history item */
    const int32_t *exclude;         /* more items never to recommend, or NULL */
    size_t         n_exclude;
    const uint8_t *exclude_mask;    /* n_items+1 bytes, non-zero = excluded, or NULL */
    const int32_t *candidates;      /* rank only these items, or NULL: the whole catalogue */
    size_t         n_candidates;
    /* An adapter of the session's model to score with, or NULL: the base
     * model. The adapted model sees the same window as the base (the last
     * max_len events; adapter.window bounds training only). A BANK adapter
     * first runs the base model over the last adapter.gate_window events;
     * its gate mixes the bank into this request's LoRA (a second, base,
     * pass). */
    const recsys_adapter *adapter;
} recsys_request;
#define RECSYS_REQUEST_INIT \
    {sizeof(recsys_request), NULL, 0, NULL, 10, 0, NULL, 0, NULL, NULL, 0, NULL}

/**
 * Scores of a request. Without candidates, scores holds n_items+1 floats
 * (index = dense item id, index 0 and excluded items get -inf); with
 * candidates, one float per candidate in their order. With times (and the
 * model's time bias) the scores are bit-for-bit those recsys_evaluate
 * computes for the same history and times.
 * @return RECSYS_OK, RECSYS_E_INVALID, RECSYS_E_NOT_FOUND (an id outside
 * 1..n_items), RECSYS_E_NOMEM.
 */
RECSYS_API recsys_status recsys_session_score_request(recsys_session *s,
                                                      const recsys_request *req, float *scores,
                                                      size_t n_scores);
/**
 * Top-k of a request, best first (ties: lower id first). items and scores
 * (scores may be NULL) hold req->k entries; *n_out (may be NULL) receives
 * how many were written: fewer than k only when fewer items are eligible.
 */
RECSYS_API recsys_status recsys_session_topk_request(recsys_session *s,
                                                     const recsys_request *req, int32_t *items,
                                                     float *scores, size_t *n_out);
/**
 * Top-k for n_reqs requests in one call: the histories are encoded in
 * batches and scored with one matrix product per batch. On a ctx with T > 1
 * threads the requests are cut into T slices scored in parallel by
 * single-threaded lanes (a one-thread context and session each, made at the
 * first such call and kept by s: memory for 16 rows of activations per
 * thread). Results are identical to n_reqs recsys_session_topk_request
 * calls, also when every request carries its own adapter (one forward for
 * the batch, each row with its LoRA: the CPU analogue of BGMV). Request i
 * writes items[i*stride ...] and scores[i*stride ...]
 * (scores may be NULL) and n_out[i] (may be NULL); every k must be <= stride.
 * On an invalid request nothing is scored and the error names its index.
 */
RECSYS_API recsys_status recsys_session_topk_batch(recsys_session *s,
                                                   const recsys_request *const *reqs,
                                                   size_t n_reqs, size_t stride, int32_t *items,
                                                   float *scores, size_t *n_out);
/**
 * Encode a request's history into the user vector (dim floats, see
 * recsys_model_info): score(item) = vec · recsys_model_item_vectors row item.
 */
RECSYS_API recsys_status recsys_session_user_vector(recsys_session *s, const recsys_request *req,
                                                    float *vec, size_t dim);

/**
 * A user's recent events, appended one at a time by a server that keeps
 * users in memory (docs/SERVING.md, "Incremental scoring"): the last
 * max_len items and times of the model. Re-rank with
 * recsys_session_topk_state (or recsys_user_state_request +
 * recsys_session_topk_request); the scores are those of a request carrying
 * the whole history. For a model trained with model.positions = start, the
 * state also keeps each block's keys and values of its window, and
 * recsys_session_topk_state encodes only the events appended since its last
 * call, until the window is full (from then on, as for models positioned
 * from the end, every append moves every position and the window is
 * encoded again). While it caches, a state holds a reference to the model
 * the cache was computed with, released by its next call with a session on
 * another model, _clear or _free. Not thread-safe per state; states are
 * independent of sessions and may be used with any session on a model of
 * the same shape.
 */
typedef struct recsys_user_state recsys_user_state;
RECSYS_API recsys_status recsys_user_state_new(const recsys_model *model, recsys_user_state **out);
RECSYS_API void recsys_user_state_free(recsys_user_state *u);
/** Append one event (item 1..n_items; time non-decreasing, 0 when unused). */
RECSYS_API recsys_status recsys_user_state_append(recsys_user_state *u, int32_t item, int64_t time);
/** Forget all events. */
RECSYS_API recsys_status recsys_user_state_clear(recsys_user_state *u);
/**
 * Point req->history, req->times and req->n_history at the state's window
 * (borrowed until the next append); other fields of req are left as they
 * are (k, exclusions, candidates). exclude_history then excludes the window's items.
 */
RECSYS_API recsys_status recsys_user_state_request(const recsys_user_state *u,
                                                   recsys_request *req);
/** Bytes the state occupies (its struct and buffers, the cached keys and
 * values included). */
RECSYS_API recsys_status recsys_user_state_bytes(const recsys_user_state *u, size_t *bytes);
/**
 * Top-k after the state's window: req gives k, exclusions, candidates and
 * adapter, and leaves history NULL (the state supplies history and times).
 * Results equal recsys_session_topk_request on the window within float
 * rounding (1e-5) when the cache is used, bit for bit otherwise (model
 * positioned from the end, a full window, or an adapter). Updates the
 * state's cache: calls on one state must not overlap.
 */
RECSYS_API recsys_status recsys_session_topk_state(recsys_session *s, recsys_user_state *u,
                                                   const recsys_request *req, int32_t *items,
                                                   float *scores, size_t *n_out);
/** Scores after the state's window, as recsys_session_score_request. */
RECSYS_API recsys_status recsys_session_score_state(recsys_session *s, recsys_user_state *u,
                                                    const recsys_request *req, float *scores,
                                                    size_t n_scores);

/* ------------------------------------------------------------------------ */
/* Per-user LoRA adapters (docs/ADAPTERS.md)                                 */

/** Adapter kinds: one user's LoRA, one LoRA shared by every user, or a
 * personalised bank (K meta-LoRAs mixed per user by a gate, RecLoRA). */
#define RECSYS_ADAPTER_USER   0
#define RECSYS_ADAPTER_SHARED 1
#define RECSYS_ADAPTER_BANK   2

/**
 * A new adapter of `kind` for model (which it keeps alive: the adapter holds
 * a reference). Keys: adapter.rank, adapter.alpha, adapter.targets,
 * adapter.bank_size, adapter.gate_* , adapter.window, trainer.seed (init).
 * A is Kaiming-uniform and B zero, so a new adapter leaves scores unchanged.
 * Errors go to ctx, which must outlive the adapter.
 * Thread safety: an adapter is read-only while used for scoring and may be
 * shared by threads; training or set_params needs exclusive use.
 * @return RECSYS_OK, RECSYS_E_INVALID (bad kind or targets), RECSYS_E_NOMEM.
 */
RECSYS_API recsys_status recsys_adapter_new(recsys_ctx *ctx, recsys_model *model,
                                            const recsys_opts *opts, int kind,
                                            recsys_adapter **out);
/** Free an adapter and drop its model reference. NULL is a no-op. */
RECSYS_API void recsys_adapter_free(recsys_adapter *a);
/** Kind, rank and number of float parameters (each out may be NULL). */
RECSYS_API recsys_status recsys_adapter_info(const recsys_adapter *a, int *kind, int *rank,
                                             int64_t *n_params);
/** Copy the n_params parameters out / in (n must equal n_params; set
 * refuses non-finite values with RECSYS_E_NUMERIC). */
RECSYS_API recsys_status recsys_adapter_get_params(const recsys_adapter *a, float *out, size_t n);
RECSYS_API recsys_status recsys_adapter_set_params(recsys_adapter *a, const float *in, size_t n);
/**
 * Serialise an adapter (shape and parameters, CRC-32C checked) into a new
 * buffer *buf of *len bytes, freed with recsys_free.
 */
RECSYS_API recsys_status recsys_adapter_to_buffer(const recsys_adapter *a, void **buf,
                                                  size_t *len);
/** An adapter from a buffer written by recsys_adapter_to_buffer, for model.
 * @return RECSYS_E_FORMAT (damaged), RECSYS_E_INVALID (another model's). */
RECSYS_API recsys_status recsys_adapter_from_buffer(recsys_ctx *ctx, recsys_model *model,
                                                    const void *buf, size_t len,
                                                    recsys_adapter **out);
/**
 * Merge n USER/SHARED adapters of one shape into a new USER adapter:
 * adapter.merge = linear (Σ w_i ΔW_i) or ties (trim to adapter.ties_density,
 * sign election, disjoint mean), re-factorised by SVD to the same rank, or
 * to adapter.merge_rank when > 0 (same alpha/r scale).
 */
RECSYS_API recsys_status recsys_adapter_merge(recsys_ctx *ctx,
                                              const recsys_adapter *const *adapters,
                                              const float *weights, size_t n,
                                              const recsys_opts *opts, recsys_adapter **out);
/** A new model: a's model with the adapter folded into its weights
 * (W += alpha/r · B·A). Not for banks. */
RECSYS_API recsys_status recsys_adapter_fold(const recsys_adapter *a, recsys_model **out);

/**
 * Create an empty adapter store for n_users users (dense ids 0..n_users-1)
 * of USER adapters shaped by opts (adapter.rank, adapter.targets, ...;
 * adapter.store_dtype f32|bf16), atomically (temporary file + rename).
 */
RECSYS_API recsys_status recsys_adapter_store_create(recsys_ctx *ctx, recsys_model *model,
                                                     const recsys_opts *opts, const char *path,
                                                     int64_t n_users);
/**
 * Open a store in O(1) (mmap; records are read and checked when fetched),
 * with an LRU cache of adapter.cache_mb MiB. writable: puts allowed.
 * Thread safety: get/put/pin may be called from several threads.
 */
RECSYS_API recsys_status recsys_adapter_store_open(recsys_ctx *ctx, recsys_model *model,
                                                   const char *path, int writable,
                                                   const recsys_opts *opts,
                                                   recsys_adapter_store **out);
/** Open a read-only store from a memory image of a store file (copied). */
RECSYS_API recsys_status recsys_adapter_store_open_buffer(recsys_ctx *ctx, recsys_model *model,
                                                          const void *buf, size_t len,
                                                          const recsys_opts *opts,
                                                          recsys_adapter_store **out);
/** Close a store. NULL is a no-op. */
RECSYS_API void recsys_adapter_store_close(recsys_adapter_store *s);
/** A new adapter holding user's LoRA (free it). RECSYS_E_NOT_FOUND when the
 * user has none, RECSYS_E_FORMAT when its record is damaged or truncated. */
RECSYS_API recsys_status recsys_adapter_store_get(recsys_adapter_store *s, int64_t user,
                                                  recsys_adapter **out);
/** Replace user's adapter: the new record is written (and synced when
 * sync != 0) before the user's index entry is switched to it, so a failed
 * or interrupted put leaves the previous adapter. */
RECSYS_API recsys_status recsys_adapter_store_put(recsys_adapter_store *s, int64_t user,
                                                  const recsys_adapter *a, int sync);
/** Pin (keep in the cache, never evicted) or unpin a user's adapter. */
RECSYS_API recsys_status recsys_adapter_store_pin(recsys_adapter_store *s, int64_t user,
                                                  int pin);
/** Store counters (each out may be NULL). */
RECSYS_API recsys_status recsys_adapter_store_stats(recsys_adapter_store *s, int64_t *n_users,
                                                    int64_t *cached, int64_t *cache_bytes,
                                                    int64_t *hits, int64_t *misses);

/**
 * Train adapter `a` on ds with a's model frozen (its parameters are never
 * written): SHARED and BANK adapters on every user's training history
 * (user = -1; adapter.epochs epochs of trainer.batch_size users; a bank's
 * gate reads the base model's state over the last adapter.gate_window
 * events, the adapted model the last adapter.window), a USER adapter on
 * user `user`'s history only (adapter.user_steps steps). BCE with one
 * sampled unseen negative per position, Adam at adapter.lr. *loss (may be
 * NULL): the mean loss of the last epoch (or of all steps for a user).
 * @return RECSYS_OK, RECSYS_E_INVALID, RECSYS_E_NUMERIC (diverged), RECSYS_E_NOMEM.
 */
RECSYS_API recsys_status recsys_adapter_train(recsys_adapter *a, const recsys_dataset *ds,
                                              int64_t user, const recsys_opts *opts,
                                              double *loss);
/**
 * Train USER adapter `a` on one explicit chronological history of n dense
 * item ids (1..n_items of a's model; times: n timestamps or NULL), a's
 * model frozen: adapter.user_steps steps, as recsys_adapter_train does for
 * a dataset user, except that nothing is held out (every event after the
 * first is a target). Continues from a's current parameters (Adam restarts):
 * the lifelong update of a stored adapter with a user's new events.
 * @return RECSYS_OK, RECSYS_E_INVALID (not a USER adapter, n < 2, an item
 *         out of range), RECSYS_E_NUMERIC (diverged), RECSYS_E_NOMEM.
 */
RECSYS_API recsys_status recsys_adapter_train_sequence(recsys_adapter *a, const int32_t *items,
                                                       const int64_t *times, size_t n,
                                                       const recsys_opts *opts, double *loss);

/** Adapter targets, as bits (1 << RECSYS_ADAPTER_TARGET_*) of
 * recsys_adapter_file_info.targets and indices of recsys_adapter_inspect_user's norms. */
#define RECSYS_ADAPTER_TARGET_Q    0
#define RECSYS_ADAPTER_TARGET_K    1
#define RECSYS_ADAPTER_TARGET_V    2
#define RECSYS_ADAPTER_TARGET_O    3
#define RECSYS_ADAPTER_TARGET_U    4
#define RECSYS_ADAPTER_TARGET_FFN1 5
#define RECSYS_ADAPTER_TARGET_FFN2 6
#define RECSYS_ADAPTER_N_TARGETS   7
/**
 * What an adapter file or store says about itself (no model needed).
 * Extensible: set struct_size to sizeof(recsys_adapter_file_info).
 */
typedef struct recsys_adapter_file_info {
    size_t   struct_size;
    int      is_store;        /* 1: an adapter store (RSADAPTS), 0: one adapter (RSLORA01) */
    int      version;         /* format version */
    int      kind;            /* RECSYS_ADAPTER_* (a store holds USER adapters) */
    int      rank;
    double   alpha;           /* the LoRA scale is alpha / rank */
    int      targets;         /* bits 1 << RECSYS_ADAPTER_TARGET_* */
    int      window;          /* events the adapted model sees */
    int      bank_size;       /* K of a bank, else 1 */
    int      dtype;           /* stored numbers: 0 f32, 1 bf16 */
    int      model_type;      /* RECSYS_MODEL_* of the base the adapter was made for */
    int      model_dim;
    int      model_blocks;
    int32_t  n_items;
    int64_t  n_params;        /* floats of one adapter (a store: of one user's) */
    int64_t  n_users;         /* a store's user slots (0 for a file) */
    int64_t  users_present;   /* users holding an adapter (a store) */
    int64_t  records;         /* records in a store file, replaced ones included */
    int64_t  bytes_per_user;  /* bytes of one store record (a file: its size) */
    int64_t  file_bytes;
} recsys_adapter_file_info;
/**
 * Describe the adapter file or store at path and verify every checksum
 * (a store: the header, CONF and every user's record, so O(users)).
 * @return RECSYS_OK, RECSYS_E_IO, RECSYS_E_FORMAT (damaged or truncated; the
 *         message names what), RECSYS_E_INVALID (struct_size too small).
 */
RECSYS_API recsys_status recsys_adapter_inspect(recsys_ctx *ctx, const char *path,
                                                recsys_adapter_file_info *info);
/**
 * Frobenius norm of each target's delta W = (alpha/r)·B·A (over all blocks)
 * of store user `user`'s adapter, or of the one USER/SHARED adapter in a
 * file (user = -1). norms: n >= RECSYS_ADAPTER_N_TARGETS doubles indexed by
 * RECSYS_ADAPTER_TARGET_*, NaN for targets not adapted.
 * @return RECSYS_OK, RECSYS_E_NOT_FOUND (the user has no adapter),
 *         RECSYS_E_FORMAT, RECSYS_E_IO, RECSYS_E_INVALID (a bank, a user out
 *         of range, a file too old to describe its projections' sizes).
 */
RECSYS_API recsys_status recsys_adapter_inspect_user(recsys_ctx *ctx, const char *path,
                                                     int64_t user, double *norms, size_t n);
/**
 * recsys_evaluate with adapters: each user is scored with their adapter in
 * `store` when it holds one, else with `adapter` (a SHARED or USER LoRA for
 * everyone, or a BANK mixed per user by its gate), else with the base
 * model. Both may be NULL (= recsys_evaluate). user_rank (may be NULL):
 * ds's user count of doubles receiving each user's 0-based target rank
 * (ties count half; NaN: the user is not evaluated) for paired comparisons.
 */
RECSYS_API recsys_status recsys_evaluate_adapters(recsys_ctx *ctx, const recsys_model *model,
                                                  const recsys_adapter *adapter,
                                                  recsys_adapter_store *store,
                                                  const recsys_dataset *ds,
                                                  const recsys_opts *opts, double *user_rank,
                                                  recsys_metrics **out);

/* ------------------------------------------------------------------------ */
/* Approximate Entropy                                                       */

/**
 * ApEn estimator. Keys: apen.m (2), apen.r (0: exact id matches), apen.window
 * (0 = whole history, else last W items).
 */
RECSYS_API recsys_status recsys_apen_new(recsys_ctx *ctx, const recsys_opts *opts,
                                         recsys_apen **out);
/** Free an ApEn estimator. NULL is a no-op. */
RECSYS_API void recsys_apen_free(recsys_apen *a);
/** ApEn of one categorical sequence (item ids). */
RECSYS_API recsys_status recsys_apen_sequence(recsys_apen *a, const int32_t *seq, size_t n,
                                              double *apen);
/** ApEn of one numeric sequence (e.g. inter-event times), tolerance apen.r. */
RECSYS_API recsys_status recsys_apen_numeric(recsys_apen *a, const double *seq, size_t n,
                                             double *apen);
/**
 * Dataset ApEn: the mean of per-user values (users with more than m+1 items
 * in the window). per_user (may be NULL) receives one value per user (NaN for
 * users too short), sized n_users. *users_used receives the count averaged.
 */
RECSYS_API recsys_status recsys_apen_dataset(recsys_apen *a, const recsys_dataset *ds,
                                             double *apen, double *per_user, size_t n_users,
                                             int64_t *users_used);

/* ------------------------------------------------------------------------ */
/* Performance Law fitter                                                    */

/**
 * A Performance Law fitter (docs/MODELS.md §5): add observations, fit, predict.
 * Errors are recorded in ctx, which must outlive the fitter.
 */
RECSYS_API recsys_status recsys_perflaw_new(recsys_ctx *ctx, recsys_perflaw **out);
/** Free a fitter. NULL is a no-op. */
RECSYS_API void recsys_perflaw_free(recsys_perflaw *p);
/**
 * Add one observation: layers N, hidden size h, data term D, metric value.
 * The law's D term has no weight of its own, so the unit of D matters: the
 * CLI uses tokens x ApEn in millions (docs/APEN.md).
 */
RECSYS_API recsys_status recsys_perflaw_add(recsys_perflaw *p, double layers, double hidden,
                                            double data, double metric);
/**
 * Fit P(N,h,D) of docs/MODELS.md §5 by bounded Levenberg–Marquardt. Fails with
 * RECSYS_E_NUMERIC when the observations cannot determine the parameters.
 */
RECSYS_API recsys_status recsys_perflaw_fit(recsys_perflaw *p);
#define RECSYS_PERFLAW_N_PARAMS 6  /* w1 w2 w3 w4 w5 b */
/** Fitted parameters and their standard errors (arrays of RECSYS_PERFLAW_N_PARAMS; stderr may be NULL), and R². */
RECSYS_API recsys_status recsys_perflaw_params(const recsys_perflaw *p, double *params,
                                               double *stderrs, double *r2);
/** Predict the metric for a configuration. */
RECSYS_API recsys_status recsys_perflaw_predict(const recsys_perflaw *p, double layers,
                                                double hidden, double data, double *metric);
/**
 * The (layers, hidden) among the candidates that maximises the prediction
 * for data term D.
 */
RECSYS_API recsys_status recsys_perflaw_best_size(const recsys_perflaw *p, double data,
                                                  const double *layers, size_t n_layers,
                                                  const double *hidden, size_t n_hidden,
                                                  double *best_layers, double *best_hidden,
                                                  double *best_metric);

/* ------------------------------------------------------------------------ */
/** Free memory the library allocated for the caller (none of the calls above do). */
RECSYS_API void recsys_free(void *p);

/* ======================================================================== */
/* Distributed training (docs/DISTRIBUTED.md). Appended section.            */
/*                                                                          */
/* librecsys.so never links MPI: the program supplies a table of collective */
/* operations. librecsys-mpi (include/librecsys/recsys_mpi.h, a separate    */
/* library built when meson finds MPI) supplies one backed by Open MPI.     */

/**
 * Collective operations over a fixed group of `size` ranks. Every rank calls
 * every operation in the same order with matching sizes (SPMD). Each
 * returns 0 on success or non-zero on failure (a timeout, a dead peer); the
 * library then fails the call with RECSYS_E_IO and, when errmsg is set, its
 * text. Counts and displacements are in BYTES unless said otherwise; all
 * buffers are distinct (no aliasing between send and receive) except for
 * allreduce_f32 and broadcast, which work in place.
 * The library calls these only from the thread that called it.
 */
/* The operations' types (one per member of recsys_collective). */
typedef int (*recsys_coll_int_fn)(void *user_data);
typedef int (*recsys_coll_allreduce_fn)(void *user_data, float *buf, size_t n);
typedef int (*recsys_coll_allgather_fn)(void *user_data, const void *send, size_t bytes,
                                        void *recv);
typedef int (*recsys_coll_allgatherv_fn)(void *user_data, const void *send, size_t bytes,
                                         void *recv, const size_t *counts,
                                         const size_t *displs);
typedef int (*recsys_coll_alltoallv_fn)(void *user_data, const void *send,
                                        const size_t *scounts, const size_t *sdispls,
                                        void *recv, const size_t *rcounts,
                                        const size_t *rdispls);
typedef int (*recsys_coll_broadcast_fn)(void *user_data, void *buf, size_t bytes, int root);
typedef const char *(*recsys_coll_errmsg_fn)(void *user_data);

typedef struct recsys_collective {
    int struct_size;  /* sizeof(recsys_collective) of the caller's header */
    void *user_data;  /* passed to every operation */
    recsys_coll_int_fn rank;
    recsys_coll_int_fn size;
    /* In place: buf[0..n) <- the element-wise sum over ranks. */
    recsys_coll_allreduce_fn allreduce_f32;
    /* recv[r*bytes .. (r+1)*bytes) <- rank r's send (size*bytes bytes). */
    recsys_coll_allgather_fn allgather;
    /* recv + displs[r] <- rank r's send of counts[r] bytes (counts known to all).
     * In place when send == recv + displs[rank] (MPI_IN_PLACE). */
    recsys_coll_allgatherv_fn allgatherv;
    /* Rank r's bytes send+sdispls[j] (scounts[j]) land at rank j's
     * recv+rdispls[r] (rcounts[r] there). */
    recsys_coll_alltoallv_fn alltoallv;
    /* buf (bytes) <- root's buf on every rank. */
    recsys_coll_broadcast_fn broadcast;
    recsys_coll_int_fn barrier;
    /* Optional (may be NULL): text of the last failure, owned by the table. */
    recsys_coll_errmsg_fn errmsg;
} recsys_collective;

/**
 * Make t train data-parallel over the ranks of c (the table is copied;
 * user_data must outlive t; NULL returns to single-process training). Every
 * rank must have created t from the same model weights, dataset and
 * options: each rank fills the whole global batch with the common RNG and
 * takes its contiguous share of the rows, dense gradients are summed in
 * rank order (reduce-scatter by alltoallv, then allgatherv), item-table
 * gradients travel as the rows the rank's batch touched, and every rank
 * applies the same optimiser step. With one rank the result is
 * bit-identical to plain training. recsys_trainer_save_checkpoint writes
 * from rank 0 only; recsys_trainer_resume reads on rank 0 and broadcasts,
 * so a checkpoint written by any number of ranks resumes on any number.
 * dist.shard_items (read by recsys_trainer_new) splits the item table
 * (weights, gradient and Adam moments) by item id over the ranks: the
 * model then holds only this rank's rows, each step fetches the rows its
 * batch touches from their owners and returns their gradients by
 * all-to-all, checkpoints go through rank 0, and
 * recsys_evaluate_distributed scores each rank's rows. Other calls refuse
 * the split model (RECSYS_E_STATE) until recsys_trainer_set_collective(t,
 * NULL), called on every rank, gathers it whole again on every rank. With
 * sharding, call this before recsys_trainer_resume.
 * @return RECSYS_OK, RECSYS_E_INVALID (bad table or rank/size),
 *         RECSYS_E_IO (a collective failed).
 */
RECSYS_API recsys_status recsys_trainer_set_collective(recsys_trainer *t,
                                                       const recsys_collective *c);
/**
 * Communication counters of t since creation: bytes this rank sent through
 * collectives, seconds spent inside them, collective calls made, and
 * optimiser steps. Any out pointer may be NULL.
 */
RECSYS_API recsys_status recsys_trainer_comm_stats(const recsys_trainer *t, double *bytes_sent,
                                                   double *seconds, int64_t *calls,
                                                   int64_t *steps);
/**
 * recsys_evaluate with the evaluated users split into contiguous shares
 * over the ranks of c; per-user ranks are gathered in user order, so every
 * rank gets the same metrics, equal to recsys_evaluate up to the order of
 * floating-point sums (exactly equal to a run on one rank). A model split
 * by dist.shard_items is evaluated where it lies: each rank computes its
 * users' states (fetching the rows they need), every rank scores all
 * users against its own rows, and the per-user counts of better-scoring
 * items are summed, so the metrics equal recsys_evaluate of the whole model.
 */
RECSYS_API recsys_status recsys_evaluate_distributed(recsys_ctx *ctx, const recsys_model *model,
                                                     const recsys_dataset *ds,
                                                     const recsys_opts *opts,
                                                     const recsys_collective *c,
                                                     recsys_metrics **out);

#ifdef __cplusplus
}
#endif
#endif /* RECSYS_H */
