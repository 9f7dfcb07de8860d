"""One example, four languages (Python here): train on the embedded synthetic
data, evaluate, save, reload, recommend the top 5 for users 0 and 1 in one batch call.

    /usr/bin/python3 bindings/python/examples/example.py [checkpoint path]
"""
import sys

import librecsys as rs

SETTINGS = {
    "data.synthetic_users": 300, "data.synthetic_items": 80, "data.synthetic_length": 25,
    "model.max_len": 16, "model.dim": 16, "model.blocks": 1, "trainer.batch_size": 64,
    "trainer.lr": "0.005", "eval.split": "test",
}


def main(path: str) -> None:
    with rs.Context(threads=2, seed=42) as ctx:
        opts = rs.Options(ctx, SETTINGS)
        ds = rs.Dataset.synthetic(ctx, opts)
        model = rs.Model(ctx, opts, ds)
        with rs.Trainer(ctx, model, ds, opts) as trainer:
            for epoch in range(1, 4):
                print(f"epoch {epoch} loss {trainer.run_epoch():.6f}")
        m = rs.evaluate(ctx, model, ds, opts)
        print(f"test HR@10 {m['HR@10']:.6f} NDCG@10 {m['NDCG@10']:.6f} MRR {m['MRR']:.6f} "
              f"users {m['users']:.0f}")
        model.save(ctx, path)
        loaded = rs.Model.load(ctx, path)
        m2 = rs.evaluate(ctx, loaded, ds, opts)
        print(f"reloaded HR@10 {m2['HR@10']:.6f} NDCG@10 {m2['NDCG@10']:.6f}")
        # One batch call for several users (recsys_session_topk_batch).
        session = rs.Session(ctx, loaded)
        items, scores = session.topk_batch([ds.user_items(u) for u in (0, 1)], k=5,
                                           exclude_history=True)
        for u in (0, 1):
            print(f"top5 user {u}:" + "".join(f" {i}:{s:.4f}" for i, s in zip(items[u], scores[u])))


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "example_model.ckpt")
    except rs.RecsysError as e:
        sys.exit(f"error: {e}")
