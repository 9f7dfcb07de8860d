/*
 * librecsys for C++17: header-only RAII wrappers over recsys.h.
 *
 *     recsys::context ctx;
 *     recsys::options opts(ctx, {{"model.dim", "16"}});
 *     auto ds = recsys::dataset::synthetic(ctx, opts);
 *     recsys::model m(ctx, opts, ds);
 *     recsys::trainer t(ctx, m, ds, opts);
 *     double loss = t.run_epoch();
 *     auto metrics = recsys::evaluate(ctx, m, ds, opts);
 *     auto top = recsys::session(ctx, m).topk(ds.user_items(0), 10);
 *
 * - Every handle class owns one C object, is move-only and frees it in its
 *   destructor. Moving leaves the source empty (operator bool is false).
 * - Failing calls throw recsys::error (a std::runtime_error) carrying the
 *   status (code(), name()) and the C message of the failing call.
 * - Buffers are passed as recsys::span<T> (pointer + size, built from a
 *   std::vector, std::array, C array or pointer and size): no copies.
 * - Lifetimes follow the C library: an options, trainer, session, apen or
 *   perflaw uses its context, which must outlive it; a trainer borrows its
 *   dataset (keep it alive); model is reference-counted in C, so a trainer
 *   or session keeps the weights alive even after the model object goes.
 *   Datasets and models may outlive the context.
 * - Threads: a context and its objects are used by one thread at a time;
 *   const dataset / const model may be shared; score from several threads
 *   with one context and session per thread.
 * - Callbacks are std::function objects. They run on the calling thread;
 *   an exception thrown in a progress callback stops training and is
 *   rethrown from run_epoch (it never unwinds through C).
 */
#ifndef RECSYS_HPP
#define RECSYS_HPP

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "recsys.hpp needs C++17"
#endif

#include <librecsys/recsys.h>

#include <array>
#include <cstdint>
#include <exception>
#include <functional>
#include <algorithm>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recsys {

/* ----------------------------------------------------------------- errors */

class error : public std::runtime_error {
public:
    error(recsys_status status, const std::string &message)
        : std::runtime_error(message + " [" + recsys_status_str(status) + "]"),
          status_(status), message_(message) {}
    recsys_status code() const noexcept { return status_; }
    const char *name() const noexcept { return recsys_status_str(status_); }
    const std::string &message() const noexcept { return message_; }

private:
    recsys_status status_;
    std::string message_;
};

namespace detail {
/* The failing call's message: the thread's last error, else the ctx's. */
inline std::string message(const recsys_ctx *ctx)
{
    std::string m = recsys_last_errmsg();
    if (m.empty() && ctx) {
        size_t n = recsys_errmsg_copy(ctx, nullptr, 0);
        m.resize(n + 1);
        recsys_errmsg_copy(ctx, &m[0], n + 1);
        m.resize(n);
    }
    return m;
}
inline void check(recsys_status st, const recsys_ctx *ctx = nullptr)
{
    if (st != RECSYS_OK) throw error(st, message(ctx));
}
template <class T, void (*Free)(T *)> struct deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)> using owned = std::unique_ptr<T, deleter<T, Free>>;
} // namespace detail

/** Throws recsys::error when the loaded library cannot serve this header. */
inline void check_version() { detail::check(recsys_check_version(RECSYS_VERSION_NUMBER)); }
/** Version of the loaded library: number (MAJOR*10000+MINOR*100+PATCH) and string. */
inline int version_number() noexcept { return recsys_version_number(); }
inline std::string version_string() { return recsys_version_string(); }
/** Status and message of the calling thread's last failing call (RECSYS_OK, "" if none). */
inline std::pair<recsys_status, std::string> last_error()
{ return {recsys_last_error(), recsys_last_errmsg()}; }

/* ------------------------------------------------------------------- span */

/** A non-owning view of n contiguous T (std::span-like, C++17). */
template <class T> class span {
public:
    constexpr span() noexcept = default;
    constexpr span(T *data, size_t size) noexcept : data_(data), size_(size) {}
    template <size_t N> constexpr span(T (&a)[N]) noexcept : data_(a), size_(N) {}
    template <class C, class = decltype(std::declval<C &>().data()),
              class = decltype(std::declval<C &>().size())>
    constexpr span(C &c) noexcept : data_(c.data()), size_(c.size()) {}
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T>>>
    constexpr span(span<U> s) noexcept : data_(s.data()), size_(s.size()) {}
    constexpr T *data() const noexcept { return data_; }
    constexpr size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T *begin() const noexcept { return data_; }
    constexpr T *end() const noexcept { return data_ + size_; }
    constexpr T &operator[](size_t i) const noexcept { return data_[i]; }

private:
    T *data_ = nullptr;
    size_t size_ = 0;
};
template <class C> span(C &) -> span<std::remove_pointer_t<decltype(std::declval<C &>().data())>>;

/* ------------------------------------------------------------- threadpool */

/** A worker pool shared by several contexts (context(pool)); reference-counted
 *  in C: contexts keep it alive, so it may be destroyed before them. */
class threadpool {
public:
    explicit threadpool(int n_threads)
    { recsys_threadpool *p = nullptr; detail::check(recsys_threadpool_new(n_threads, &p)); h_.reset(p); }
    recsys_threadpool *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    detail::owned<recsys_threadpool, recsys_threadpool_free> h_;
};

/* ---------------------------------------------------------------- context */

/** Where the last error was in an input file (context::error_location). */
struct error_location {
    std::string file;
    int line = 0, column = 0;
};

class context {
public:
    context() { recsys_ctx *c = nullptr; detail::check(recsys_ctx_new(&c)); h_.reset(c); }
    /** A context on a pool shared with other contexts (set_threads then throws RECSYS_E_STATE). */
    explicit context(const threadpool &pool)
    { recsys_ctx *c = nullptr; detail::check(recsys_ctx_new_shared(pool.get(), &c)); h_.reset(c); }
    /** A context whose pool never has more than n_threads threads (caller included). */
    static context with_max_threads(int n_threads)
    {
        recsys_ctx *c = nullptr;
        detail::check(recsys_ctx_new_with_threads(n_threads, &c));
        return context(c);
    }
    /** The last error's file, line and column when it was in an input file. */
    bool error_location(recsys::error_location &out) const
    {
        const char *f = nullptr;
        if (recsys_ctx_error_location(get(), &f, &out.line, &out.column) != RECSYS_OK) return false;
        out.file = f ? f : "";
        return true;
    }
    explicit context(int threads, uint64_t seed = 42) : context() { set_threads(threads); set_seed(seed); }
    recsys_ctx *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    void check(recsys_status st) const { detail::check(st, h_.get()); }

    void set_threads(int n) { check(recsys_ctx_set_threads(get(), n)); }
    int threads() const noexcept { return recsys_ctx_threads(get()); }
    void set_seed(uint64_t seed) { check(recsys_ctx_set_seed(get(), seed)); }
    void set_max_isa(const std::string &isa) { check(recsys_ctx_set_max_isa(get(), isa.c_str())); }
    std::string isa() const { return recsys_ctx_isa(get()); }
    std::string kernel_name(int kernel) const
    {
        const char *n = recsys_ctx_kernel_name(get(), kernel);
        return n ? n : "";
    }
    void set_gemm_backend(const std::string &b) { check(recsys_ctx_set_gemm_backend(get(), b.c_str())); }
    void set_bf16(bool on) { check(recsys_ctx_set_bf16(get(), on ? 1 : 0)); }
    std::string errmsg() const { return recsys_ctx_errmsg(get()); }

    using log_fn = std::function<void(int level, std::string_view message)>;
    /** Log lines go to fn on the calling thread (empty fn: dropped). Exceptions are swallowed. */
    void set_log(log_fn fn)
    {
        if (!fn) { check(recsys_ctx_set_log(get(), nullptr, nullptr)); log_.reset(); return; }
        auto holder = std::make_unique<log_fn>(std::move(fn));
        check(recsys_ctx_set_log(get(), &context::log_tramp, holder.get()));
        log_ = std::move(holder);
    }

private:
    explicit context(recsys_ctx *c) noexcept : h_(c) {}
    static void log_tramp(void *user, int level, const char *msg) noexcept
    {
        try { (*static_cast<log_fn *>(user))(level, msg); } catch (...) {}
    }
    detail::owned<recsys_ctx, recsys_ctx_free> h_;
    std::unique_ptr<log_fn> log_; /* heap: its address survives moves */
};

/* ---------------------------------------------------------------- options */

/** One option key (recsys_opts_describe); strings are static. */
struct option_info {
    std::string key;
    int type = RECSYS_OPT_STRING;       /* RECSYS_OPT_STRING, _INT, _FLOAT, _ENUM, _BOOL */
    std::string type_name;              /* "string", "int", "float", "enum", "bool" */
    std::string default_value;
    std::vector<std::string> choices;   /* enum: the allowed words */
    double min = 0, max = 0;            /* int and float: inclusive bounds */
    std::string allowed;                /* a phrase on allowed values, or "" */
    std::string doc;
};

/** Every option key with type, default, bounds or choices and doc. Needs no context. */
inline std::vector<option_info> describe_options()
{
    std::vector<option_info> out;
    for (int i = 0, n = recsys_opts_count(nullptr); i < n; i++) {
        recsys_opt_info c{};
        c.struct_size = sizeof c;
        detail::check(recsys_opts_describe(i, &c));
        option_info o;
        o.key = c.key ? c.key : "";
        o.type = c.type;
        o.type_name = c.type_name ? c.type_name : "";
        o.default_value = c.default_value ? c.default_value : "";
        if (c.choices) {
            std::string_view all(c.choices);
            for (size_t a = 0;;) {
                size_t b = all.find('|', a);
                o.choices.emplace_back(all.substr(a, b == std::string_view::npos ? all.npos : b - a));
                if (b == std::string_view::npos) break;
                a = b + 1;
            }
        }
        o.min = c.min;
        o.max = c.max;
        o.allowed = c.allowed ? c.allowed : "";
        o.doc = c.doc ? c.doc : "";
        out.push_back(std::move(o));
    }
    return out;
}

class options {
public:
    explicit options(const context &ctx) : ctx_(ctx.get())
    {
        recsys_opts *o = nullptr;
        ctx.check(recsys_opts_new(ctx.get(), &o));
        h_.reset(o);
    }
    options(const context &ctx, std::initializer_list<std::pair<std::string, std::string>> kv)
        : options(ctx)
    {
        for (auto &p : kv) set(p.first, p.second);
    }
    recsys_opts *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    options &set(const std::string &key, const std::string &value)
    { check(recsys_opts_set(get(), key.c_str(), value.c_str())); return *this; }
    options &set(const std::string &key, const char *value) { return set(key, std::string(value)); }
    options &set(const std::string &key, int64_t v) { check(recsys_opts_set_int(get(), key.c_str(), v)); return *this; }
    options &set(const std::string &key, int v) { return set(key, static_cast<int64_t>(v)); }
    options &set(const std::string &key, double v) { check(recsys_opts_set_float(get(), key.c_str(), v)); return *this; }
    options &set(const std::string &key, bool v) { return set(key, std::string(v ? "true" : "false")); }
    std::string get(const std::string &key) const
    {
        const char *v = nullptr;
        check(recsys_opts_get(get(), key.c_str(), &v));
        return v;
    }
    int64_t get_int(const std::string &key) const
    { int64_t v = 0; check(recsys_opts_get_int(get(), key.c_str(), &v)); return v; }
    double get_float(const std::string &key) const
    { double v = 0; check(recsys_opts_get_float(get(), key.c_str(), &v)); return v; }
    /** Every key described (the same for every options set): see describe_options(). */
    std::vector<option_info> describe() const { return describe_options(); }
    /** Every known key. */
    std::vector<std::string> keys() const
    {
        std::vector<std::string> out;
        for (int i = 0, n = recsys_opts_count(get()); i < n; i++) out.emplace_back(recsys_opts_key(get(), i));
        return out;
    }
    void load_yaml(const std::string &path) { check(recsys_opts_load_yaml(get(), path.c_str())); }
    void load_yaml_string(std::string_view yaml, const std::string &name = "<string>")
    { check(recsys_opts_load_yaml_string(get(), yaml.data(), yaml.size(), name.c_str())); }

private:
    void check(recsys_status st) const { detail::check(st, ctx_); }
    recsys_ctx *ctx_;
    detail::owned<recsys_opts, recsys_opts_free> h_;
};

inline const recsys_opts *opts_or_null(const options *o) { return o ? o->get() : nullptr; }

/* ---------------------------------------------------------------- dataset */

class dataset {
public:
    dataset(const context &ctx, const std::string &path, const options &opts)
    {
        recsys_dataset *d = nullptr;
        ctx.check(recsys_dataset_open(ctx.get(), path.c_str(), opts.get(), &d));
        h_.reset(d);
    }
    /** An interaction file (`user item [timestamp] [rating]` lines, .gz too). */
    static dataset load(const context &ctx, const std::string &path, const options *opts = nullptr)
    {
        recsys_dataset *d = nullptr;
        ctx.check(recsys_dataset_load(ctx.get(), path.c_str(), opts_ptr(opts), &d));
        return dataset(d);
    }
    /** A sequence file (`user i1 i2 ...` lines) and an optional timestamp file ("" = none). */
    static dataset load_sequences(const context &ctx, const std::string &path,
                                  const std::string &times_path = "", const options *opts = nullptr)
    {
        recsys_dataset *d = nullptr;
        ctx.check(recsys_dataset_load_sequences(ctx.get(), path.c_str(),
                                                times_path.empty() ? nullptr : times_path.c_str(),
                                                opts_ptr(opts), &d));
        return dataset(d);
    }
    static dataset synthetic(const context &ctx, const options &opts)
    {
        recsys_dataset *d = nullptr;
        ctx.check(recsys_dataset_synthetic(ctx.get(), opts.get(), &d));
        return dataset(d);
    }
    static dataset from_arrays(const context &ctx, span<const int64_t> users, span<const int64_t> items,
                               span<const int64_t> times, const options &opts)
    {
        if (users.size() != items.size() || (!times.empty() && times.size() != users.size()))
            throw error(RECSYS_E_INVALID, "users, items and times must have one length");
        recsys_dataset *d = nullptr;
        ctx.check(recsys_dataset_from_arrays(ctx.get(), users.size(), users.data(), items.data(),
                                             times.empty() ? nullptr : times.data(), opts.get(), &d));
        return dataset(d);
    }
    const recsys_dataset *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    double stat(int which) const { double v = 0; detail::check(recsys_dataset_stat(get(), which, &v)); return v; }
    int64_t n_users() const { return static_cast<int64_t>(stat(RECSYS_STAT_USERS)); }
    int32_t n_items() const { return static_cast<int32_t>(stat(RECSYS_STAT_ITEMS)); }
    /** The user's dense item ids: a view into the dataset (valid while it lives). */
    span<const int32_t> user_items(int64_t user) const
    {
        const int32_t *items = nullptr;
        size_t n = 0;
        detail::check(recsys_dataset_user_items(get(), user, &items, nullptr, &n));
        return {items, n};
    }
    /** The user's timestamps (a view; empty when the data has none). */
    span<const int64_t> user_times(int64_t user) const
    {
        const int32_t *items = nullptr;
        const int64_t *times = nullptr;
        size_t n = 0;
        detail::check(recsys_dataset_user_items(get(), user, &items, &times, &n));
        return times ? span<const int64_t>{times, n} : span<const int64_t>{};
    }
    std::string item_name(int32_t item) const
    { const char *n = nullptr; detail::check(recsys_dataset_item_name(get(), item, &n)); return n; }
    std::string user_name(int64_t user) const
    { const char *n = nullptr; detail::check(recsys_dataset_user_name(get(), user, &n)); return n; }
    int32_t item_id(const std::string &name) const
    { int32_t v = 0; detail::check(recsys_dataset_item_id(get(), name.c_str(), &v)); return v; }
    int64_t user_id(const std::string &name) const
    { int64_t v = 0; detail::check(recsys_dataset_user_id(get(), name.c_str(), &v)); return v; }

private:
    static const recsys_opts *opts_ptr(const options *o) { return o ? o->get() : nullptr; }
    explicit dataset(recsys_dataset *d) : h_(d) {}
    detail::owned<recsys_dataset, recsys_dataset_free> h_;
};

/* ------------------------------------------------------------------ model */

class model {
public:
    model(const context &ctx, const options &opts, const dataset &ds)
    {
        recsys_model *m = nullptr;
        ctx.check(recsys_model_new(ctx.get(), opts.get(), ds.get(), &m));
        h_.reset(m);
    }
    static model load(const context &ctx, const std::string &path)
    {
        recsys_model *m = nullptr;
        ctx.check(recsys_model_load(ctx.get(), path.c_str(), &m));
        return model(m);
    }
    void save(const context &ctx, const std::string &path) const
    { ctx.check(recsys_model_save(ctx.get(), get(), path.c_str())); }
    recsys_model *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    int64_t n_params() const { int64_t n = 0; detail::check(recsys_model_n_params(get(), &n)); return n; }
    int32_t n_items() const { int32_t n = 0; detail::check(recsys_model_n_items(get(), &n)); return n; }
    std::string get(const std::string &key) const
    { const char *v = nullptr; detail::check(recsys_model_get(get(), key.c_str(), &v)); return v; }

    /** Type, sizes and flags (recsys_model_info_get). */
    recsys_model_info info() const
    {
        recsys_model_info i{};
        i.struct_size = sizeof i;
        detail::check(recsys_model_info_get(get(), &i));
        return i;
    }
    /** Dense id of an external item id (throws RECSYS_E_NOT_FOUND when unknown). */
    int32_t item_id(const std::string &external_id) const
    { int32_t v = 0; detail::check(recsys_model_item_id(get(), external_id.c_str(), &v)); return v; }
    std::string item_name(int32_t item) const
    { const char *n = nullptr; detail::check(recsys_model_item_name(get(), item, &n)); return n; }

    /** A borrowed rows x dim float matrix (row-major), valid while the model lives. */
    struct matrix_view {
        span<const float> data;
        int32_t rows = 0;
        int dim = 0;
        span<const float> row(int32_t i) const { return {data.data() + static_cast<size_t>(i) * dim, static_cast<size_t>(dim)}; }
    };
    /** The item embedding table, n_items+1 rows (row 0: padding), without a copy. */
    matrix_view item_table() const
    {
        const float *t = nullptr;
        matrix_view v;
        detail::check(recsys_model_item_table(get(), &t, &v.rows, &v.dim));
        v.data = {t, static_cast<size_t>(v.rows) * static_cast<size_t>(v.dim)};
        return v;
    }
    /** The vectors scores are dot products with (normalised for l2norm models). */
    matrix_view item_vectors() const
    {
        const float *t = nullptr;
        matrix_view v;
        detail::check(recsys_model_item_vectors(get(), &t, &v.rows, &v.dim));
        v.data = {t, static_cast<size_t>(v.rows) * static_cast<size_t>(v.dim)};
        return v;
    }

    /* Tensors by name (import / export of weights trained elsewhere). */
    /** A model with opts' config for n_items items (ids "1".."n_items"), no dataset. */
    static model new_blank(const context &ctx, const options &opts, int32_t n_items)
    {
        recsys_model *m = nullptr;
        ctx.check(recsys_model_new_blank(ctx.get(), opts.get(), n_items, &m));
        return model(m);
    }
    struct tensor_info {
        std::string name;
        std::vector<int64_t> shape;
        int64_t numel = 0;
    };
    int tensor_count() const { int n = 0; detail::check(recsys_model_tensor_count(get(), &n)); return n; }
    tensor_info tensor(int i) const
    {
        const char *name = nullptr;
        int ndim = 0;
        int64_t shape[RECSYS_TENSOR_MAX_DIMS] = {0};
        tensor_info t;
        detail::check(recsys_model_tensor_info(get(), i, &name, &ndim, shape, &t.numel));
        t.name = name;
        t.shape.assign(shape, shape + ndim);
        return t;
    }
    std::vector<tensor_info> tensors() const
    {
        std::vector<tensor_info> v;
        for (int i = 0, n = tensor_count(); i < n; ++i) v.push_back(tensor(i));
        return v;
    }
    /** Copy tensor name into out (out.size() must be its numel). */
    void get_tensor(const context &ctx, const std::string &name, span<float> out) const
    { ctx.check(recsys_model_get_tensor(ctx.get(), get(), name.c_str(), out.data(), out.size())); }
    std::vector<float> get_tensor(const context &ctx, const std::string &name) const
    {
        for (int i = 0, n = tensor_count(); i < n; ++i) {
            tensor_info t = tensor(i);
            if (t.name != name) continue;
            std::vector<float> v(static_cast<size_t>(t.numel));
            get_tensor(ctx, name, span<float>(v));
            return v;
        }
        get_tensor(ctx, name, span<float>()); /* throws the C error (not found) */
        return {};
    }
    /** Overwrite a tensor: only on a model nothing else holds (no session, trainer, adapter). */
    void set_tensor(const context &ctx, const std::string &name, span<const float> data)
    { ctx.check(recsys_model_set_tensor(ctx.get(), get(), name.c_str(), data.data(), data.size())); }
    /** External ids of items 1..n_items. */
    void set_item_ids(const context &ctx, const std::vector<std::string> &ids)
    {
        std::vector<const char *> p;
        p.reserve(ids.size());
        for (const auto &s : ids) p.push_back(s.c_str());
        ctx.check(recsys_model_set_item_ids(ctx.get(), get(), p.data(), static_cast<int32_t>(p.size())));
    }

private:
    friend class adapter;
    explicit model(recsys_model *m) : h_(m) {}
    detail::owned<recsys_model, recsys_model_free> h_;
};

/* ---------------------------------------------------------------- trainer */

class trainer {
public:
    /** Uses ctx (must outlive it) and borrows ds (keep it alive); holds a model reference. */
    trainer(const context &ctx, model &m, const dataset &ds, const options &opts) : ctx_(ctx.get())
    {
        recsys_trainer *t = nullptr;
        ctx.check(recsys_trainer_new(ctx.get(), m.get(), ds.get(), opts.get(), &t));
        h_.reset(t);
    }
    recsys_trainer *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    /** Return true to stop; a thrown exception stops too and leaves run_epoch. */
    using progress_fn = std::function<bool(const recsys_progress &)>;
    void set_progress(progress_fn fn)
    {
        if (!fn) { check(recsys_trainer_set_progress(get(), nullptr, nullptr)); cb_.reset(); return; }
        auto holder = std::make_unique<callback>();
        holder->fn = std::move(fn);
        check(recsys_trainer_set_progress(get(), &trainer::progress_tramp, holder.get()));
        cb_ = std::move(holder);
    }
    double run_epoch()
    {
        double loss = 0;
        recsys_status st = recsys_trainer_run_epoch(get(), &loss);
        if (cb_ && cb_->pending) std::rethrow_exception(std::exchange(cb_->pending, nullptr));
        check(st);
        return loss;
    }
    int epoch() const noexcept { return recsys_trainer_epoch(get()); }
    /** trainer.eval_every says to evaluate after the epochs run so far. */
    bool eval_due() const noexcept { return recsys_trainer_eval_due(get()) != 0; }
    void save_checkpoint(const std::string &path) { check(recsys_trainer_save_checkpoint(get(), path.c_str())); }
    void resume(const std::string &path) { check(recsys_trainer_resume(get(), path.c_str())); }

private:
    struct callback {
        progress_fn fn;
        std::exception_ptr pending;
    };
    static int progress_tramp(void *user, const recsys_progress *p) noexcept
    {
        auto *cb = static_cast<callback *>(user);
        try {
            return cb->fn(*p) ? 1 : 0;
        } catch (...) {
            cb->pending = std::current_exception();
            return 1;
        }
    }
    void check(recsys_status st) const { detail::check(st, ctx_); }
    recsys_ctx *ctx_;
    detail::owned<recsys_trainer, recsys_trainer_free> h_;
    std::unique_ptr<callback> cb_;
};

/* ---------------------------------------------------------------- serving */

struct topk_result {
    std::vector<int32_t> items;
    std::vector<float> scores;
};

/** One scoring request: spans borrowed for the call (recsys_request). */
struct request {
    span<const int32_t> history;     /* dense ids, oldest first */
    span<const int64_t> times;       /* empty, or one per history item */
    int k = 10;
    bool exclude_history = false;
    span<const int32_t> exclude;     /* more items never to recommend */
    span<const uint8_t> exclude_mask; /* empty, or n_items+1 bytes */
    span<const int32_t> candidates;  /* empty: the whole catalogue */
    bool has_candidates = false;     /* set by with_candidates (an empty set is allowed) */
    const recsys_adapter *adapter = nullptr; /* an adapter of the session's model
                                                (adapter::get()), or null: the base */

    request() = default;
    request(span<const int32_t> h, int k_ = 10, bool exclude_history_ = false)
        : history(h), k(k_), exclude_history(exclude_history_) {}
    request &with_times(span<const int64_t> t) { times = t; return *this; }
    request &with_exclude(span<const int32_t> e) { exclude = e; return *this; }
    request &with_exclude_mask(span<const uint8_t> m) { exclude_mask = m; return *this; }
    request &with_candidates(span<const int32_t> c) { candidates = c; has_candidates = true; return *this; }
    request &with_adapter(const recsys_adapter *a) { adapter = a; return *this; }

    recsys_request c(int32_t n_items) const
    {
        if (!times.empty() && times.size() != history.size())
            throw error(RECSYS_E_INVALID, "times must have one entry per history item");
        if (!exclude_mask.empty() && exclude_mask.size() != static_cast<size_t>(n_items) + 1)
            throw error(RECSYS_E_INVALID, "exclude_mask must have n_items+1 entries");
        recsys_request r = RECSYS_REQUEST_INIT;
        r.history = history.data();
        r.n_history = history.size();
        r.times = times.empty() ? nullptr : times.data();
        r.k = k;
        r.exclude_history = exclude_history ? 1 : 0;
        r.exclude = exclude.empty() ? nullptr : exclude.data();
        r.n_exclude = exclude.size();
        r.exclude_mask = exclude_mask.empty() ? nullptr : exclude_mask.data();
        r.candidates = has_candidates || !candidates.empty() ? candidates.data() : nullptr;
        r.n_candidates = candidates.size();
        r.adapter = adapter;
        return r;
    }
};

/** Results of session::topk_batch: row i holds counts[i] items at items[i*stride]. */
struct batch_result {
    size_t stride = 0;
    std::vector<int32_t> items;
    std::vector<float> scores;
    std::vector<size_t> counts;
    span<const int32_t> row_items(size_t i) const { return {items.data() + i * stride, counts[i]}; }
    span<const float> row_scores(size_t i) const { return {scores.data() + i * stride, counts[i]}; }
};

class user_state;

class session {
public:
    /** Uses ctx (one per thread; must outlive it); holds a reference to the model. */
    session(const context &ctx, const model &m) : ctx_(ctx.get())
    {
        recsys_session *s = nullptr;
        ctx.check(recsys_session_new(ctx.get(), m.get(), &s));
        h_.reset(s);
        recsys_model_info i = m.info();
        n_items_ = i.n_items;
        dim_ = i.dim;
    }
    recsys_session *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    int32_t n_items() const noexcept { return n_items_; }

    /** Scores of every item into out (n_items + 1 floats; out[0] = -inf). */
    void score(span<const int32_t> history, span<float> out)
    { check(recsys_session_score(get(), history.data(), history.size(), out.data(), out.size())); }
    std::vector<float> score(span<const int32_t> history)
    {
        std::vector<float> out(static_cast<size_t>(n_items_) + 1);
        score(history, span<float>(out));
        return out;
    }
    void topk(span<const int32_t> history, span<int32_t> items, span<float> scores,
              bool exclude_history = true)
    {
        if (scores.size() < items.size()) throw error(RECSYS_E_INVALID, "scores shorter than items");
        check(recsys_session_topk(get(), history.data(), history.size(), static_cast<int>(items.size()),
                                  exclude_history ? 1 : 0, items.data(), scores.data()));
    }
    topk_result topk(span<const int32_t> history, int k, bool exclude_history = true)
    {
        topk_result r{std::vector<int32_t>(static_cast<size_t>(k > 0 ? k : 0)),
                      std::vector<float>(static_cast<size_t>(k > 0 ? k : 0))};
        check(recsys_session_topk(get(), history.data(), history.size(), k, exclude_history ? 1 : 0,
                                  r.items.data(), r.scores.data()));
        return r;
    }

    /** Scores of a request into out: n_items+1 floats, or one per candidate. */
    void score(const request &req, span<float> out)
    {
        recsys_request r = req.c(n_items_);
        check(recsys_session_score_request(get(), &r, out.data(), out.size()));
    }
    std::vector<float> score(const request &req)
    {
        size_t n = req.has_candidates || !req.candidates.empty() ? req.candidates.size()
                                                                  : static_cast<size_t>(n_items_) + 1;
        std::vector<float> out(n);
        score(req, span<float>(out));
        return out;
    }
    /** Top-k of a request (req.k), best first; fewer only when fewer are eligible. */
    topk_result topk(const request &req)
    {
        size_t k = req.k > 0 ? static_cast<size_t>(req.k) : 0, n = 0;
        topk_result res{std::vector<int32_t>(k), std::vector<float>(k)};
        recsys_request r = req.c(n_items_);
        check(recsys_session_topk_request(get(), &r, res.items.data(), res.scores.data(), &n));
        res.items.resize(n);
        res.scores.resize(n);
        return res;
    }
    /** Top-k of many requests in one call (batched encoding, one GEMM per
     *  batch); identical to topk(request) for each. stride 0 = the largest k. */
    batch_result topk_batch(span<const request> reqs, size_t stride = 0)
    {
        std::vector<recsys_request> cs;
        std::vector<const recsys_request *> ptrs;
        cs.reserve(reqs.size());
        for (const request &q : reqs) {
            cs.push_back(q.c(n_items_));
        }
        if (stride == 0)
            for (const request &q : reqs) stride = std::max(stride, static_cast<size_t>(q.k > 0 ? q.k : 0));
        for (const recsys_request &c : cs) ptrs.push_back(&c);
        batch_result b;
        b.stride = stride;
        b.items.assign(reqs.size() * stride, 0);
        b.scores.assign(reqs.size() * stride, -std::numeric_limits<float>::infinity());
        b.counts.assign(reqs.size(), 0);
        if (!reqs.empty())
            check(recsys_session_topk_batch(get(), ptrs.data(), ptrs.size(), stride, b.items.data(),
                                            b.scores.data(), b.counts.data()));
        return b;
    }
    /** Same histories, one k and exclude_history for all. */
    batch_result topk_batch(span<const span<const int32_t>> histories, int k, bool exclude_history = true)
    {
        std::vector<request> rs;
        rs.reserve(histories.size());
        for (auto h : histories) rs.emplace_back(h, k, exclude_history);
        return topk_batch(span<const request>(rs), static_cast<size_t>(k > 0 ? k : 0));
    }
    /** Top-k and scores after a user state's window (recsys_session_topk_state,
     *  _score_state): req gives k, exclusions, candidates and no history.
     *  Models trained with model.positions = start encode only the events
     *  appended since the last call. Defined after user_state. */
    topk_result topk(user_state &u, const request &req);
    void score(user_state &u, const request &req, span<float> out);
    std::vector<float> score(user_state &u, const request &req);
    /** The user vector (dim floats): score(i) = dot(user_vector, model.item_vectors().row(i)). */
    void user_vector(const request &req, span<float> out)
    {
        recsys_request r = req.c(n_items_);
        check(recsys_session_user_vector(get(), &r, out.data(), out.size()));
    }
    std::vector<float> user_vector(const request &req)
    {
        std::vector<float> v(static_cast<size_t>(dim_));
        user_vector(req, span<float>(v));
        return v;
    }

private:
    void check(recsys_status st) const { detail::check(st, ctx_); }
    recsys_ctx *ctx_;
    detail::owned<recsys_session, recsys_session_free> h_;
    int32_t n_items_ = 0;
    int dim_ = 0;
};

/* ----------------------------------------------------------- user state */

/** A user's recent events for incremental serving (recsys_user_state):
 * session.score(state.request()) equals a request with the whole history.
 * Not thread-safe; independent of sessions. */
class user_state {
public:
    explicit user_state(const model &m)
    {
        recsys_user_state *u = nullptr;
        detail::check(recsys_user_state_new(m.get(), &u));
        h_.reset(u);
    }
    recsys_user_state *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    void append(int32_t item, int64_t time = 0) { detail::check(recsys_user_state_append(get(), item, time)); }
    void clear() { detail::check(recsys_user_state_clear(get())); }
    size_t bytes() const { size_t b = 0; detail::check(recsys_user_state_bytes(get(), &b)); return b; }
    /** A request on the window (spans borrowed until the next append/clear). */
    request request_for(int k = 10, bool exclude_history = false) const
    {
        recsys_request r = RECSYS_REQUEST_INIT;
        detail::check(recsys_user_state_request(get(), &r));
        request q({r.history, r.n_history}, k, exclude_history);
        if (r.times) q.with_times({r.times, r.n_history});
        return q;
    }

private:
    detail::owned<recsys_user_state, recsys_user_state_free> h_;
};

inline topk_result session::topk(user_state &u, const request &req)
{
    size_t k = req.k > 0 ? static_cast<size_t>(req.k) : 0, n = 0;
    topk_result res{std::vector<int32_t>(k), std::vector<float>(k)};
    recsys_request r = req.c(n_items_);
    check(recsys_session_topk_state(get(), u.get(), &r, res.items.data(), res.scores.data(), &n));
    res.items.resize(n);
    res.scores.resize(n);
    return res;
}

inline void session::score(user_state &u, const request &req, span<float> out)
{
    recsys_request r = req.c(n_items_);
    check(recsys_session_score_state(get(), u.get(), &r, out.data(), out.size()));
}

inline std::vector<float> session::score(user_state &u, const request &req)
{
    size_t n = req.has_candidates || !req.candidates.empty() ? req.candidates.size()
                                                              : static_cast<size_t>(n_items_) + 1;
    std::vector<float> out(n);
    score(u, req, span<float>(out));
    return out;
}

/* -------------------------------------------------------------- adapters */

enum class adapter_kind : int { user = RECSYS_ADAPTER_USER, shared = RECSYS_ADAPTER_SHARED, bank = RECSYS_ADAPTER_BANK };

struct adapter_info {
    adapter_kind kind = adapter_kind::user;
    int rank = 0;
    int64_t n_params = 0;
};

/** A LoRA adapter (recsys_adapter). Holds a reference to its model (which may
 * be destroyed first); uses ctx for errors (ctx must outlive it). Read-only
 * while scoring (shareable); set_params needs exclusive use. */
class adapter {
public:
    adapter(const context &ctx, const model &m, const options *opts = nullptr,
            adapter_kind kind = adapter_kind::user)
        : ctx_(ctx.get())
    {
        recsys_adapter *a = nullptr;
        ctx.check(recsys_adapter_new(ctx.get(), m.get(), opts ? opts->get() : nullptr,
                                     static_cast<int>(kind), &a));
        h_.reset(a);
    }
    adapter(const context &ctx, const model &m, const options &opts, adapter_kind kind = adapter_kind::user)
        : adapter(ctx, m, &opts, kind) {}
    /** From the bytes of to_buffer (RECSYS_E_FORMAT damaged, RECSYS_E_INVALID another model's). */
    static adapter from_buffer(const context &ctx, const model &m, span<const uint8_t> buf)
    {
        recsys_adapter *a = nullptr;
        ctx.check(recsys_adapter_from_buffer(ctx.get(), m.get(), buf.data(), buf.size(), &a));
        return adapter(ctx.get(), a);
    }
    /** Merge USER/SHARED adapters of one shape into a new USER adapter (adapter.merge). */
    static adapter merge(const context &ctx, span<const adapter> adapters, span<const float> weights,
                         const options *opts = nullptr)
    {
        if (weights.size() != adapters.size()) throw error(RECSYS_E_INVALID, "one weight per adapter");
        std::vector<const recsys_adapter *> p;
        for (const auto &a : adapters) p.push_back(a.get());
        recsys_adapter *out = nullptr;
        ctx.check(recsys_adapter_merge(ctx.get(), p.data(), weights.data(), p.size(),
                                       opts ? opts->get() : nullptr, &out));
        return adapter(ctx.get(), out);
    }
    recsys_adapter *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    adapter_info info() const
    {
        adapter_info i;
        int kind = 0;
        check(recsys_adapter_info(get(), &kind, &i.rank, &i.n_params));
        i.kind = static_cast<adapter_kind>(kind);
        return i;
    }
    void get_params(span<float> out) const { check(recsys_adapter_get_params(get(), out.data(), out.size())); }
    std::vector<float> get_params() const
    {
        std::vector<float> v(static_cast<size_t>(info().n_params));
        get_params(span<float>(v));
        return v;
    }
    void set_params(span<const float> in) { check(recsys_adapter_set_params(get(), in.data(), in.size())); }
    std::vector<uint8_t> to_buffer() const
    {
        void *buf = nullptr;
        size_t n = 0;
        check(recsys_adapter_to_buffer(get(), &buf, &n));
        std::unique_ptr<void, void (*)(void *)> hold(buf, recsys_free);
        const uint8_t *b = static_cast<const uint8_t *>(buf);
        return std::vector<uint8_t>(b, b + n);
    }
    /** Train on ds with the model frozen: user = -1 for SHARED / BANK (every
     * user), a user id for a USER adapter. Returns the mean loss. */
    double train(const dataset &ds, int64_t user = -1, const options *opts = nullptr)
    {
        double loss = 0;
        check(recsys_adapter_train(get(), ds.get(), user, opts ? opts->get() : nullptr, &loss));
        return loss;
    }
    /** Train a USER adapter further on one explicit history of dense item
     * ids (times empty or one per item); nothing held out. The mean loss. */
    double train_sequence(const std::vector<int32_t> &items,
                          const std::vector<int64_t> &times = {},
                          const options *opts = nullptr)
    {
        if (!times.empty() && times.size() != items.size())
            throw std::invalid_argument("train_sequence: times must match items");
        double loss = 0;
        check(recsys_adapter_train_sequence(get(), items.data(),
                                            times.empty() ? nullptr : times.data(), items.size(),
                                            opts ? opts->get() : nullptr, &loss));
        return loss;
    }
    /** A new model with this adapter folded into its weights (not for banks). */
    model fold() const
    {
        recsys_model *m = nullptr;
        check(recsys_adapter_fold(get(), &m));
        return model(m);
    }

private:
    friend class adapter_store;
    adapter(recsys_ctx *ctx, recsys_adapter *a) : ctx_(ctx), h_(a) {}
    void check(recsys_status st) const { detail::check(st, ctx_); }
    recsys_ctx *ctx_;
    detail::owned<recsys_adapter, recsys_adapter_free> h_;
};

struct store_stats {
    int64_t n_users = 0, cached = 0, cache_bytes = 0, hits = 0, misses = 0;
};

/** A file of per-user USER adapters (recsys_adapter_store). Holds a reference
 * to its model; uses ctx (must outlive it). get/put/pin are thread-safe. */
class adapter_store {
public:
    static void create(const context &ctx, const model &m, const options &opts,
                       const std::string &path, int64_t n_users)
    { ctx.check(recsys_adapter_store_create(ctx.get(), m.get(), opts.get(), path.c_str(), n_users)); }
    static adapter_store open(const context &ctx, const model &m, const std::string &path,
                              bool writable = false, const options *opts = nullptr)
    {
        recsys_adapter_store *s = nullptr;
        ctx.check(recsys_adapter_store_open(ctx.get(), m.get(), path.c_str(), writable ? 1 : 0,
                                            opts ? opts->get() : nullptr, &s));
        return adapter_store(ctx.get(), s);
    }
    /** A read-only store from a memory image of a store file (copied). */
    static adapter_store open_buffer(const context &ctx, const model &m, span<const uint8_t> buf,
                                     const options *opts = nullptr)
    {
        recsys_adapter_store *s = nullptr;
        ctx.check(recsys_adapter_store_open_buffer(ctx.get(), m.get(), buf.data(), buf.size(),
                                                   opts ? opts->get() : nullptr, &s));
        return adapter_store(ctx.get(), s);
    }
    recsys_adapter_store *get() const noexcept { return h_.get(); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    /** user's adapter (RECSYS_E_NOT_FOUND when none). */
    adapter get(int64_t user) const
    {
        recsys_adapter *a = nullptr;
        check(recsys_adapter_store_get(get(), user, &a));
        return adapter(ctx_, a);
    }
    void put(int64_t user, const adapter &a, bool sync = false)
    { check(recsys_adapter_store_put(get(), user, a.get(), sync ? 1 : 0)); }
    void pin(int64_t user, bool on = true) { check(recsys_adapter_store_pin(get(), user, on ? 1 : 0)); }
    store_stats stats() const
    {
        store_stats s;
        check(recsys_adapter_store_stats(get(), &s.n_users, &s.cached, &s.cache_bytes, &s.hits, &s.misses));
        return s;
    }

private:
    adapter_store(recsys_ctx *ctx, recsys_adapter_store *s) : ctx_(ctx), h_(s) {}
    void check(recsys_status st) const { detail::check(st, ctx_); }
    recsys_ctx *ctx_;
    detail::owned<recsys_adapter_store, recsys_adapter_store_close> h_;
};

/* ------------------------------------------------------------- evaluation */

class metrics {
public:
    explicit metrics(recsys_metrics *m) : h_(m) {}
    int size() const noexcept { return recsys_metrics_count(h_.get()); }
    std::string name(int i) const { const char *n = recsys_metrics_name(h_.get(), i); return n ? n : ""; }
    double value(int i) const noexcept { return recsys_metrics_value(h_.get(), i); }
    double get(const std::string &name) const
    { double v = 0; detail::check(recsys_metrics_get(h_.get(), name.c_str(), &v)); return v; }
    double operator[](const std::string &name) const { return get(name); }
    std::map<std::string, double> to_map() const
    {
        std::map<std::string, double> m;
        for (int i = 0; i < size(); i++) m[name(i)] = value(i);
        return m;
    }

private:
    detail::owned<recsys_metrics, recsys_metrics_free> h_;
};

inline metrics evaluate(const context &ctx, const model &m, const dataset &ds, const options &opts)
{
    recsys_metrics *r = nullptr;
    ctx.check(recsys_evaluate(ctx.get(), m.get(), ds.get(), opts.get(), &r));
    return metrics(r);
}
/** evaluate with adapters: a user's adapter in store when it holds one,
 * else adapter, else the base model (both may be null). user_rank: empty,
 * or ds.n_users() doubles receiving each user's 0-based target rank. */
inline metrics evaluate_adapters(const context &ctx, const model &m, const adapter *a,
                                 adapter_store *store, const dataset &ds, const options &opts,
                                 span<double> user_rank = {})
{
    if (!user_rank.empty() && user_rank.size() != static_cast<size_t>(ds.n_users()))
        throw error(RECSYS_E_INVALID, "user_rank must have one entry per dataset user");
    recsys_metrics *r = nullptr;
    ctx.check(recsys_evaluate_adapters(ctx.get(), m.get(), a ? a->get() : nullptr,
                                       store ? store->get() : nullptr, ds.get(), opts.get(),
                                       user_rank.empty() ? nullptr : user_rank.data(), &r));
    return metrics(r);
}
inline metrics evaluate_popularity(const context &ctx, const dataset &ds, const options &opts)
{
    recsys_metrics *r = nullptr;
    ctx.check(recsys_evaluate_popularity(ctx.get(), ds.get(), opts.get(), &r));
    return metrics(r);
}

/* --------------------------------------------------------------- analysis */

class apen {
public:
    apen(const context &ctx, const options &opts) : ctx_(ctx.get())
    { recsys_apen *a = nullptr; ctx.check(recsys_apen_new(ctx.get(), opts.get(), &a)); h_.reset(a); }
    double sequence(span<const int32_t> s)
    { double v = 0; detail::check(recsys_apen_sequence(h_.get(), s.data(), s.size(), &v), ctx_); return v; }
    double numeric(span<const double> s)
    { double v = 0; detail::check(recsys_apen_numeric(h_.get(), s.data(), s.size(), &v), ctx_); return v; }
    struct dataset_result {
        double apen = 0;
        std::vector<double> per_user; /* NaN for users too short */
        int64_t users_used = 0;
    };
    /** Dataset ApEn: mean over users, per-user values and the users averaged. */
    dataset_result dataset(const recsys::dataset &ds)
    {
        dataset_result r;
        r.per_user.resize(static_cast<size_t>(ds.n_users()));
        detail::check(recsys_apen_dataset(h_.get(), ds.get(), &r.apen, r.per_user.data(), r.per_user.size(),
                                          &r.users_used), ctx_);
        return r;
    }

private:
    recsys_ctx *ctx_;
    detail::owned<recsys_apen, recsys_apen_free> h_;
};

class perflaw {
public:
    explicit perflaw(const context &ctx) : ctx_(ctx.get())
    { recsys_perflaw *p = nullptr; ctx.check(recsys_perflaw_new(ctx.get(), &p)); h_.reset(p); }
    void add(double layers, double hidden, double data, double metric)
    { detail::check(recsys_perflaw_add(h_.get(), layers, hidden, data, metric), ctx_); }
    void fit() { detail::check(recsys_perflaw_fit(h_.get()), ctx_); }
    double predict(double layers, double hidden, double data) const
    { double v = 0; detail::check(recsys_perflaw_predict(h_.get(), layers, hidden, data, &v), ctx_); return v; }
    /** Fitted parameters; standard errors (RECSYS_PERFLAW_N_PARAMS doubles) and R² if asked. */
    std::array<double, RECSYS_PERFLAW_N_PARAMS> params(double *r2 = nullptr, double *stderrs = nullptr) const
    {
        std::array<double, RECSYS_PERFLAW_N_PARAMS> p{};
        detail::check(recsys_perflaw_params(h_.get(), p.data(), stderrs, r2), ctx_);
        return p;
    }
    struct best {
        double layers = 0, hidden = 0, metric = 0;
    };
    /** The (layers, hidden) among the candidates that maximises the prediction for data. */
    best best_size(double data, span<const double> layers, span<const double> hidden) const
    {
        best b;
        detail::check(recsys_perflaw_best_size(h_.get(), data, layers.data(), layers.size(), hidden.data(),
                                               hidden.size(), &b.layers, &b.hidden, &b.metric), ctx_);
        return b;
    }

private:
    recsys_ctx *ctx_;
    detail::owned<recsys_perflaw, recsys_perflaw_free> h_;
};

} // namespace recsys
#endif /* RECSYS_HPP */
