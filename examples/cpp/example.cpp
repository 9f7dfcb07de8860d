// One example, four languages (C++ here; Python, Rust and Go ship the same):
// train SASRec on the embedded synthetic data, evaluate, save, reload and
// recommend the top 5 items for users 0 and 1 (one batch call). With the same seed every language
// prints the same lines (tests/bindings/compare_examples.sh checks it).
//     c++ -std=c++17 example.cpp $(pkg-config --cflags --libs librecsys)
//     ./a.out [checkpoint path]
#include <librecsys/recsys.hpp>

#include <cstdio>
#include <string>

int main(int argc, char **argv)
{
    std::string path = argc > 1 ? argv[1] : "example_model.ckpt";
    try {
        recsys::check_version();
        recsys::context ctx(2, 42);
        recsys::options opts(ctx, {{"data.synthetic_users", "300"}, {"data.synthetic_items", "80"},
                                   {"data.synthetic_length", "25"}, {"model.max_len", "16"},
                                   {"model.dim", "16"}, {"model.blocks", "1"},
                                   {"trainer.batch_size", "64"}, {"trainer.lr", "0.005"},
                                   {"eval.split", "test"}});
        auto ds = recsys::dataset::synthetic(ctx, opts);
        recsys::model model(ctx, opts, ds);
        {
            recsys::trainer trainer(ctx, model, ds, opts);
            for (int epoch = 1; epoch <= 3; epoch++)
                std::printf("epoch %d loss %.6f\n", epoch, trainer.run_epoch());
        }
        auto m = recsys::evaluate(ctx, model, ds, opts);
        std::printf("test HR@10 %.6f NDCG@10 %.6f MRR %.6f users %.0f\n", m["HR@10"], m["NDCG@10"],
                    m["MRR"], m["users"]);
        model.save(ctx, path);
        auto loaded = recsys::model::load(ctx, path);
        auto m2 = recsys::evaluate(ctx, loaded, ds, opts);
        std::printf("reloaded HR@10 %.6f NDCG@10 %.6f\n", m2["HR@10"], m2["NDCG@10"]);
        // One batch call for several users (recsys_session_topk_batch).
        recsys::session session(ctx, loaded);
        std::vector<recsys::request> reqs{recsys::request(ds.user_items(0), 5, true),
                                          recsys::request(ds.user_items(1), 5, true)};
        auto top = session.topk_batch(recsys::span<const recsys::request>(reqs));
        for (size_t u = 0; u < reqs.size(); u++) {
            std::printf("top5 user %zu:", u);
            for (size_t i = 0; i < top.counts[u]; i++)
                std::printf(" %d:%.4f", top.row_items(u)[i], top.row_scores(u)[i]);
            std::printf("\n");
        }
    } catch (const recsys::error &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
