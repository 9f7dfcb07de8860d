// recsys.hpp: RAII, move-only handles, exceptions with the C message,
// spans, lambda callbacks, and concurrent scoring on one shared model.
#include <limits>
#include <librecsys/recsys.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include <unistd.h>

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

static_assert(!std::is_copy_constructible_v<recsys::adapter>);
static_assert(std::is_nothrow_move_constructible_v<recsys::adapter>);
static_assert(std::is_nothrow_move_constructible_v<recsys::adapter_store>);
static_assert(!std::is_copy_constructible_v<recsys::user_state>);

/* Tensors by name, user states, adapters, adapter stores. */
static void test_serving2_adapters(recsys::context &ctx, const recsys::options &opts)
{
    auto ds = recsys::dataset::synthetic(ctx, opts);
    recsys::model model(ctx, opts, ds);
    auto h = ds.user_items(4);
    // tensor round trip: blank model + every tensor = identical scores
    auto blank = recsys::model::new_blank(ctx, opts, model.n_items());
    EXPECT(blank.tensor_count() == model.tensor_count() && model.tensor_count() > 0);
    for (const auto &t : model.tensors()) {
        auto v = model.get_tensor(ctx, t.name);
        EXPECT(static_cast<int64_t>(v.size()) == t.numel && !t.shape.empty());
        blank.set_tensor(ctx, t.name, v);
    }
    {
        recsys::session s1(ctx, model), s2(ctx, blank);
        EXPECT(s1.score(h) == s2.score(h));
        auto t0 = blank.get_tensor(ctx, blank.tensor(0).name);
        expect_error([&] { blank.set_tensor(ctx, blank.tensor(0).name, t0); }, RECSYS_E_INVALID, "");
    }
    expect_error([&] { model.get_tensor(ctx, "no.such.tensor"); }, RECSYS_E_NOT_FOUND, "");
    std::vector<std::string> ids;
    for (int32_t i = 1; i <= blank.n_items(); i++) ids.push_back("x" + std::to_string(i));
    blank.set_item_ids(ctx, ids);
    EXPECT(blank.item_id("x3") == 3);

    // user state: appends = one request with the whole history
    {
        recsys::user_state st(model);
        for (int32_t it : h) st.append(it);
        EXPECT(st.bytes() > 0);
        recsys::session s(ctx, model);
        EXPECT(s.score(st.request_for()) == s.score(recsys::request(h)));
        auto a = s.topk(st.request_for(5)), b = s.topk(recsys::request(h, 5));
        EXPECT(a.items == b.items && a.scores == b.scores);
        auto c = s.topk(st, recsys::request({}, 5)); // through the state (positions from the end: a forward)
        EXPECT(c.items == b.items && c.scores == b.scores);
        EXPECT(s.score(st, recsys::request()) == s.score(recsys::request(h)));
        st.clear();
        EXPECT(st.request_for().history.empty());
        expect_error([&] { st.append(model.n_items() + 9); }, RECSYS_E_NOT_FOUND, "not in");
    }

    // adapter: params, buffer round trip, errors with the C message
    recsys::adapter a(ctx, model, opts);
    auto info = a.info();
    EXPECT(info.kind == recsys::adapter_kind::user && info.rank > 0 && info.n_params > 0);
    std::vector<float> p(static_cast<size_t>(info.n_params));
    for (size_t i = 0; i < p.size(); i++) p[i] = 0.001f * static_cast<float>(i % 17) - 0.008f;
    a.set_params(p);
    EXPECT(a.get_params() == p);
    auto buf = a.to_buffer();
    auto b = recsys::adapter::from_buffer(ctx, model, buf);
    EXPECT(b.get_params() == p);
    buf.resize(buf.size() - 3);
    expect_error([&] { recsys::adapter::from_buffer(ctx, model, buf); }, RECSYS_E_FORMAT, "");
    std::vector<float> bad = p;
    bad[0] = std::numeric_limits<float>::quiet_NaN();
    expect_error([&] { a.set_params(bad); }, RECSYS_E_NUMERIC, "finite");

    // merge and fold
    std::vector<recsys::adapter> two;
    two.push_back(std::move(b));
    two.emplace_back(ctx, model, opts);
    std::vector<float> w = {0.5f, 0.5f};
    auto merged = recsys::adapter::merge(ctx, two, w, &opts);
    EXPECT(merged.info().n_params == info.n_params);
    recsys::model folded = a.fold();
    EXPECT(folded.n_items() == model.n_items());
    {   // a request carrying the adapter scores as the folded model
        recsys::session sb(ctx, model), sf(ctx, folded);
        auto x = sb.score(recsys::request(h).with_adapter(a.get()));
        auto y = sf.score(recsys::request(h));
        EXPECT(x.size() == y.size());
        for (size_t i = 1; i < x.size(); i++) EXPECT(std::fabs(x[i] - y[i]) <= 1e-5f);
    }

    // store: create, put, get, pin, stats, open_buffer
    std::string path = "test_cpp_adapters.store";
    recsys::adapter_store::create(ctx, model, opts, path, 3);
    {
        auto st = recsys::adapter_store::open(ctx, model, path, true, &opts);
        expect_error([&] { st.get(int64_t{2}); }, RECSYS_E_NOT_FOUND, "");
        st.put(2, a, true);
        st.pin(2);
        EXPECT(st.get(int64_t{2}).get_params() == p);
        auto s = st.stats();
        EXPECT(s.n_users == 3);
        st.pin(2, false);
    }
    std::FILE *f = std::fopen(path.c_str(), "rb");
    std::vector<uint8_t> image;
    if (f) {
        int c;
        while ((c = std::fgetc(f)) != EOF) image.push_back(static_cast<uint8_t>(c));
        std::fclose(f);
    }
    auto ro = recsys::adapter_store::open_buffer(ctx, model, image, &opts);
    EXPECT(ro.get(int64_t{2}).get_params() == p);
    std::remove(path.c_str());
}
static void test_adapter_train_eval(recsys::context &ctx, recsys::options &opts)
{
    auto ds = recsys::dataset::synthetic(ctx, opts);
    recsys::model model(ctx, opts, ds);
    opts.set("adapter.epochs", int64_t{1}).set("adapter.user_steps", int64_t{2});
    recsys::adapter shared(ctx, model, opts, recsys::adapter_kind::shared);
    EXPECT(std::isfinite(shared.train(ds, -1, &opts)));
    recsys::adapter user(ctx, model, opts);
    EXPECT(std::isfinite(user.train(ds, 0, &opts)));
    EXPECT(std::isfinite(user.train_sequence({1, 2, 3, 2}, {}, &opts)));
    expect_error([&] { user.train_sequence({1}, {}, &opts); }, RECSYS_E_INVALID, "");
    std::vector<double> ranks(static_cast<size_t>(ds.n_users()));
    auto m = recsys::evaluate_adapters(ctx, model, &shared, nullptr, ds, opts, ranks);
    auto base = recsys::evaluate(ctx, model, ds, opts);
    auto same = recsys::evaluate_adapters(ctx, model, nullptr, nullptr, ds, opts);
    EXPECT(same["NDCG@10"] == base["NDCG@10"] && m["NDCG@10"] >= 0);
    expect_error([&] { user.train(ds, int64_t{1} << 40, &opts); }, RECSYS_E_INVALID, "");
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

    // ---- serving API: info after reload, external ids, item table, requests, batch
    {
        char dir[] = "/tmp/recsys_cpp_XXXXXX";
        EXPECT(mkdtemp(dir) != nullptr);
        std::string d = dir;
        {   // file loaders: interactions and sequences (+ times)
            std::FILE *f = std::fopen((d + "/events.txt").c_str(), "w");
            for (int u = 0; u < 40; u++)
                for (int j = 0; j < 8; j++) std::fprintf(f, "u%d\t%d\t%d\n", u, 500 + (u * 3 + j * 7) % 30, j * 10);
            std::fclose(f);
            f = std::fopen((d + "/seq.txt").c_str(), "w");
            std::FILE *t = std::fopen((d + "/seq_times.txt").c_str(), "w");
            for (int u = 0; u < 30; u++) {
                std::fprintf(f, "%d", u);
                std::fprintf(t, "%d", u);
                for (int j = 0; j < 6; j++) { std::fprintf(f, " %d", 1 + (u + j * 5) % 20); std::fprintf(t, " %d", j * 100); }
                std::fprintf(f, "\n");
                std::fprintf(t, "\n");
            }
            std::fclose(f);
            std::fclose(t);
        }
        auto ev = recsys::dataset::load(ctx, d + "/events.txt", &opts);
        EXPECT(ev.n_users() == 40 && ev.stat(RECSYS_STAT_HAS_TIME) == 1);
        EXPECT(ev.user_name(ev.user_id("u7")) == "u7" && !ev.user_times(0).empty());
        auto sq = recsys::dataset::load_sequences(ctx, d + "/seq.txt", d + "/seq_times.txt");
        EXPECT(sq.n_users() == 30 && sq.user_times(0).size() == 6);
        auto sq2 = recsys::dataset::load_sequences(ctx, d + "/seq.txt");
        EXPECT(sq2.user_times(0).empty());
        expect_error([&] { recsys::dataset::load(ctx, d + "/none.txt"); }, RECSYS_E_IO, "none.txt");

        recsys::model em(ctx, opts, ev);
        {
            recsys::trainer et(ctx, em, ev, opts);
            et.run_epoch();
            EXPECT(!et.eval_due() || et.epoch() >= 1);
        }
        em.save(ctx, d + "/m.ckpt");
        auto lm = recsys::model::load(ctx, d + "/m.ckpt");
        recsys_model_info a = em.info(), b = lm.info();
        EXPECT(b.n_items == ev.n_items() && b.dim == 16 && b.type == RECSYS_MODEL_SASREC);
        EXPECT(b.has_item_ids == 1 && b.data_has_time == 1 && b.n_params == a.n_params);
        EXPECT(b.data_fingerprint == a.data_fingerprint && b.n_users == 40);
        int32_t i505 = lm.item_id("505");
        EXPECT(i505 == ev.item_id("505") && lm.item_name(i505) == "505");
        expect_error([&] { lm.item_id("nope"); }, RECSYS_E_NOT_FOUND, "");

        auto tab = lm.item_table();
        EXPECT(tab.rows == b.n_items + 1 && tab.dim == b.dim && tab.data.size() == size_t(tab.rows) * tab.dim);
        auto vecs = lm.item_vectors();
        recsys::session ss(ctx, lm);
        auto h = ev.user_items(3);
        auto ht = ev.user_times(3);
        recsys::request rq(h, 5, true);
        rq.with_times(ht);
        auto uv = ss.user_vector(rq);
        auto sc = ss.score(rq);
        for (int32_t i = 1; i <= b.n_items; i += 7) {
            double dot = 0;
            for (int j = 0; j < b.dim; j++) dot += double(uv[j]) * vecs.row(i)[j];
            bool excluded = std::find(h.begin(), h.end(), i) != h.end();
            EXPECT(excluded ? std::isinf(sc[i]) : std::fabs(dot - sc[i]) < 1e-3);
        }
        // exclude, mask, candidates
        std::vector<int32_t> ex{1, 2};
        std::vector<uint8_t> mask(size_t(b.n_items) + 1, 0);
        mask[4] = 1;
        auto sx = ss.score(recsys::request(h).with_exclude(ex).with_exclude_mask(mask));
        EXPECT(std::isinf(sx[1]) && std::isinf(sx[2]) && std::isinf(sx[4]));
        std::vector<int32_t> cands{6, 3, 9};
        auto cs = ss.score(recsys::request(h).with_times(ht).with_candidates(cands));
        EXPECT(cs.size() == 3);
        auto full = ss.score(recsys::request(h).with_times(ht));
        for (size_t c = 0; c < 3; c++) EXPECT(cs[c] == full[size_t(cands[c])]);
        auto two = ss.topk(recsys::request(h, 5).with_times(ht).with_candidates(cands).with_exclude(ex = {3}));
        EXPECT(two.items.size() == 2);
        expect_error([&] { std::vector<uint8_t> bad(3); ss.score(recsys::request(h).with_exclude_mask(bad)); },
                     RECSYS_E_INVALID, "exclude_mask");
        // batch == single
        std::vector<recsys::request> reqs;
        for (int64_t u = 0; u < 10; u++) reqs.push_back(recsys::request(ev.user_items(u), 6, true).with_times(ev.user_times(u)));
        reqs[4].k = 3;
        auto br = ss.topk_batch(recsys::span<const recsys::request>(reqs));
        EXPECT(br.stride == 6 && br.counts.size() == 10 && br.counts[4] == 3);
        for (size_t r = 0; r < reqs.size(); r++) {
            auto one = ss.topk(reqs[r]);
            auto bi = br.row_items(r);
            auto bs = br.row_scores(r);
            EXPECT(std::vector<int32_t>(bi.begin(), bi.end()) == one.items);
            EXPECT(std::vector<float>(bs.begin(), bs.end()) == one.scores);
        }
        std::vector<recsys::span<const int32_t>> hs{ev.user_items(0), ev.user_items(1)};
        auto hb = ss.topk_batch(recsys::span<const recsys::span<const int32_t>>(hs), 4);
        auto t0 = ss.topk(ev.user_items(0), 4);
        EXPECT(std::vector<int32_t>(hb.row_items(0).begin(), hb.row_items(0).end()) == t0.items);
        // the item table view stays valid while a session holds the model
        std::vector<float> copy(tab.data.begin(), tab.data.end());
        {
            auto tmp = recsys::model::load(ctx, d + "/m.ckpt");
            recsys::session keep(ctx, tmp);
            auto v = tmp.item_table();
            { recsys::model gone = std::move(tmp); }
            EXPECT(std::equal(v.data.begin(), v.data.end(), copy.begin()));
        }
        // pools and thread-limited contexts
        recsys::threadpool pool(2);
        recsys::context pa(pool), pb(pool);
        expect_error([&] { pa.set_threads(3); }, RECSYS_E_STATE, "");
        auto one = recsys::context::with_max_threads(1);
        auto ref = recsys::session(one, lm).topk(h, 5);
        EXPECT(recsys::session(pa, lm).topk(h, 5).items == ref.items);
        EXPECT(recsys::session(pb, lm).topk(h, 5).scores == ref.scores);
        expect_error([&] { recsys::threadpool(0); }, RECSYS_E_INVALID, "");
        // analysis
        recsys::apen ap(ctx, opts);
        auto ar = ap.dataset(ev);
        EXPECT(ar.per_user.size() == 40 && ar.users_used > 0 && ar.apen >= 0);
        recsys::perflaw pl(ctx);
        for (double L : {1.0, 2.0, 4.0})
            for (double H : {16.0, 32.0, 64.0})
                for (double D : {1.0, 4.0})
                    pl.add(L, H, D, 0.1 + 0.02 * std::log(L) + 0.01 * std::log(H) + 0.03 * std::log(D));
        try {
            pl.fit();
            double r2 = 0, se[RECSYS_PERFLAW_N_PARAMS];
            pl.params(&r2, se);
            std::vector<double> Ls{1, 2, 4}, Hs{16, 64};
            auto best = pl.best_size(4.0, Ls, Hs);
            EXPECT(best.metric == pl.predict(best.layers, best.hidden, 4.0));
        } catch (const recsys::error &e) {
            EXPECT(e.code() == RECSYS_E_NUMERIC);
        }
        // options describe, version, last error, error location
        auto desc = recsys::describe_options();
        EXPECT(desc.size() == opts.keys().size());
        bool saw_dim = false, saw_enum = false;
        for (auto &o : desc) {
            if (o.key == "model.dim") saw_dim = o.type == RECSYS_OPT_INT && o.max >= 64 && !o.doc.empty();
            if (o.type == RECSYS_OPT_ENUM)
                saw_enum = !o.choices.empty() &&
                           std::find(o.choices.begin(), o.choices.end(), o.default_value) != o.choices.end();
        }
        EXPECT(saw_dim && saw_enum && opts.describe().size() == desc.size());
        EXPECT(recsys::version_number() == RECSYS_VERSION_NUMBER && recsys::version_string() == RECSYS_VERSION_STRING);
        std::FILE *y = std::fopen((d + "/bad.yaml").c_str(), "w");
        std::fprintf(y, "model:\n  dim: [oops\n");
        std::fclose(y);
        expect_error([&] { opts.load_yaml(d + "/bad.yaml"); }, RECSYS_E_PARSE, "bad.yaml");
        EXPECT(recsys::last_error().first == RECSYS_E_PARSE);
        recsys::error_location loc;
        EXPECT(ctx.error_location(loc) && loc.line >= 1 && loc.file.find("bad.yaml") != std::string::npos);
        for (const char *f : {"/events.txt", "/seq.txt", "/seq_times.txt", "/m.ckpt", "/bad.yaml"})
            std::remove((d + f).c_str());
        rmdir(dir);
    }

    // destruction order: dataset and model may outlive the context
    auto *ctx2 = new recsys::context(1, 1);
    auto ds2 = std::make_unique<recsys::dataset>(recsys::dataset::synthetic(*ctx2, recsys::options(*ctx2)));
    delete ctx2;
    EXPECT(ds2->n_users() > 0);

    test_serving2_adapters(ctx, opts);
    test_adapter_train_eval(ctx, opts);
    if (failures) { std::printf("0 passed, 1 failed (%d)\n", failures); return 1; }
    std::printf("1 passed, 0 failed\n");
    return 0;
}
