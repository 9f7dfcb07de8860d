"""Smoke test of the C ABI from Python through ctypes: train a tiny SASRec on
the embedded synthetic data and check that it beats the popularity ranking."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bindings", "python"))
import librecsys as rs  # noqa: E402


def main():
    assert rs.lib.recsys_version_number() >= 100, "version number"
    ctx = rs.Context(threads=2, seed=7)
    opts = rs.Options(ctx)
    for key, value in {
        "data.synthetic_users": 400, "data.synthetic_items": 100, "data.synthetic_length": 30,
        "model.max_len": 20, "model.dim": 16, "model.blocks": 1, "trainer.epochs": 4,
        "trainer.batch_size": 64, "trainer.lr": 0.005, "eval.split": "test",
    }.items():
        opts.set(key, value)
    try:
        opts.set("model.no_such_key", 1)
        raise AssertionError("unknown key accepted")
    except rs.RecsysError as e:
        assert "no_such_key" in str(e), str(e)
    ds = rs.Dataset(ctx, "synthetic", opts)
    assert ds.stat(rs.STAT_USERS) == 400
    model = rs.Model(ctx, opts, ds)
    trainer = rs.Trainer(ctx, model, ds, opts)
    losses = [trainer.run_epoch() for _ in range(4)]
    assert losses[-1] < losses[0], f"loss did not fall: {losses}"
    m = rs.evaluate(ctx, model, ds, opts)
    pop = rs.evaluate_popularity(ctx, ds, opts)
    print(f"HR@10 {m['HR@10']:.3f} popularity {pop['HR@10']:.3f} users {m['users']:.0f}")
    assert m["users"] > 0
    assert m["HR@10"] > pop["HR@10"], (m, pop)
    trainer.close()
    model.close()
    ds.close()
    opts.close()
    ctx.close()
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
