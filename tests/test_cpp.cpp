// recsys.hpp: RAII, move-only handles, exceptions with the C message,
// spans, lambda callbacks, and concurrent scoring on one shared model.
#include <librecsys/recsys.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

static_assert(!std::is_copy_constructible_v<recsys::context>);
static_assert(!std::is_copy_assignable_v<recsys::model>);
static_assert(std::is_nothrow_move_constructible_v<recsys::model>);
static_assert(std::is_nothrow_move_constructible_v<recsys::dataset>);
static_assert(std::is_move_assignable_v<recsys::session>);

static int failures;
#define EXPECT(c)                                                              \
    do {                                                                       \
        if (!(c)) { std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); failures++; } \
    } while (0)

template <class F> static void expect_error(F f, recsys_status code, const char *needle)
{
    try {
        f();
        std::fprintf(stderr, "no exception (expected %s)\n", recsys_status_str(code));
        failures++;
    } catch (const recsys::error &e) {
        if (e.code() != code || e.message().find(needle) == std::string::npos) {
            std::fprintf(stderr, "wrong error: %s (wanted %s with '%s')\n", e.what(),
                         recsys_status_str(code), needle);
            failures++;
        }
    }
}

int main()
{
    recsys::check_version();
    recsys::context ctx(2, 7);
    recsys::options opts(ctx, {{"data.synthetic_users", "300"}, {"data.synthetic_items", "80"},
                               {"model.max_len", "16"}, {"model.dim", "16"}, {"model.blocks", "1"},
                               {"trainer.batch_size", "64"}});
    opts.set("trainer.lr", 0.005).set("eval.split", "test");
    EXPECT(opts.get_int("model.dim") == 16);
    expect_error([&] { opts.set("model.no_such_key", 1); }, RECSYS_E_NOT_FOUND, "no_such_key");
    EXPECT(ctx.errmsg().find("no_such_key") != std::string::npos);
    opts.set("model.dim", 16);
    EXPECT(ctx.errmsg().empty());

    auto ds = recsys::dataset::synthetic(ctx, opts);
    EXPECT(ds.n_users() == 300);
    expect_error([&] { ds.stat(99); }, RECSYS_E_INVALID, "statistic");
    expect_error([&] { ds.item_id("zzz"); }, RECSYS_E_NOT_FOUND, "zzz");
    expect_error([&] { recsys::dataset(ctx, "/no/such/file.txt", opts); }, RECSYS_E_IO, "/no/such/file");

    recsys::model model(ctx, opts, ds);
    EXPECT(model.n_items() == ds.n_items() && model.n_params() > 0);
    {
        recsys::trainer t(ctx, model, ds, opts);
        int calls = 0;
        t.set_progress([&](const recsys_progress &p) { calls++; return p.step >= 2; });
        expect_error([&] { t.run_epoch(); }, RECSYS_E_ABORTED, "");
        EXPECT(calls == 2);
        t.set_progress([](const recsys_progress &) -> bool { throw std::logic_error("from lambda"); });
        bool caught = false;
        try { t.run_epoch(); } catch (const std::logic_error &e) { caught = std::string(e.what()) == "from lambda"; }
        EXPECT(caught);
        t.set_progress(nullptr);
        double l1 = t.run_epoch(), l2 = t.run_epoch();
        EXPECT(std::isfinite(l1) && std::isfinite(l2));
        recsys::trainer moved = std::move(t);   // move-only handle
        EXPECT(!t && moved);
        EXPECT(std::isfinite(moved.run_epoch()));
    }
    auto m = recsys::evaluate(ctx, model, ds, opts);
    EXPECT(m["users"] > 0 && m.size() > 3);
    expect_error([&] { m.get("NOPE"); }, RECSYS_E_NOT_FOUND, "NOPE");

    // spans: vector, C array, pointer + size; scores written in place
    recsys::session s(ctx, model);
    auto hist = ds.user_items(0);
    std::vector<float> scores(static_cast<size_t>(model.n_items()) + 1);
    s.score(hist, scores);
    EXPECT(std::isinf(scores[0]) && scores[0] < 0);
    int32_t top[4];
    float topsc[4];
    s.topk(hist, top, topsc, false);
    float best = -INFINITY;
    for (size_t i = 1; i < scores.size(); i++) best = scores[i] > best ? scores[i] : best;
    EXPECT(topsc[0] == best);
    std::vector<int32_t> bad = {model.n_items() + 3};
    expect_error([&] { s.topk(bad, 3); }, RECSYS_E_NOT_FOUND, "not an item");

    // the model outlives its handle: the session holds a C reference
    recsys::model moved_model = std::move(model);
    { recsys::model gone = std::move(moved_model); }
    EXPECT(s.topk(hist, 3).items.size() == 3);

    // concurrent scoring: one shared const model, a context + session per thread
    const recsys::model shared(ctx, opts, ds);
    auto expect = recsys::session(ctx, shared).topk(hist, 5);
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&] {
            recsys::context tctx(1, 1);
            recsys::session ts(tctx, shared);
            for (int i = 0; i < 50; i++) {
                auto r = ts.topk(hist, 5);
                if (r.items != expect.items || r.scores != expect.scores) mismatches++;
                try { ds.stat(1000); } catch (const recsys::error &e) {
                    if (e.message().find("1000") == std::string::npos) mismatches++;
                }
            }
        });
    for (auto &t : threads) t.join();
    EXPECT(mismatches == 0);

    // destruction order: dataset and model may outlive the context
    auto *ctx2 = new recsys::context(1, 1);
    auto ds2 = std::make_unique<recsys::dataset>(recsys::dataset::synthetic(*ctx2, recsys::options(*ctx2)));
    delete ctx2;
    EXPECT(ds2->n_users() > 0);

    if (failures) { std::printf("0 passed, 1 failed (%d)\n", failures); return 1; }
    std::printf("1 passed, 0 failed\n");
    return 0;
}
