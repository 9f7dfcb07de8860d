"""Train, evaluate, save, load, score; NumPy in and out without copies;
options; callbacks; the analysis objects."""
import math

import numpy as np
import pytest

import librecsys as rs
from conftest import SMALL


def test_train_evaluate_save_load_topk(ctx, opts, tmp_path):
    ds = rs.Dataset.synthetic(ctx, opts)
    assert ds.n_users == 300 and ds.n_items <= 80
    model = rs.Model(ctx, opts, ds)
    assert model.n_params > 0 and model.n_items == ds.n_items
    with rs.Trainer(ctx, model, ds, opts) as t:
        losses = [t.run_epoch() for _ in range(3)]
        assert t.epoch == 3
    assert all(math.isfinite(l) for l in losses) and losses[-1] < losses[0]
    m = rs.evaluate(ctx, model, ds, opts)
    pop = rs.evaluate_popularity(ctx, ds, opts)
    assert m["users"] > 0 and m["HR@10"] > pop["HR@10"]
    path = str(tmp_path / "m.ckpt")
    model.save(ctx, path)
    again = rs.Model.load(ctx, path)
    assert rs.evaluate(ctx, again, ds, opts) == pytest.approx(m, rel=1e-9)
    hist = ds.user_items(0)
    a = rs.Session(ctx, model).topk(hist, k=5)
    b = rs.Session(ctx, again).topk(hist, k=5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].dtype == np.int32 and a[1].dtype == np.float32
    assert not set(a[0]) & set(hist)          # history excluded


def test_numpy_without_copies(trained):
    ctx, _, ds, model = trained
    v1, v2 = ds.user_items(3), ds.user_items(3)
    assert v1.ctypes.data == v2.ctypes.data   # a view into the dataset
    assert not v1.flags.writeable
    s = rs.Session(ctx, model)
    out = np.zeros(model.n_items + 1, np.float32)
    r = s.score(v1, out=out)
    assert r is out and out[0] == -np.inf and np.isfinite(out[1:]).all()
    items, scores = s.topk(v1, k=4, exclude_history=False)
    assert np.allclose(scores, np.sort(out[1:])[::-1][:4])
    bi, bs = s.topk_batch([v1, ds.user_items(4)], k=4, exclude_history=False)
    assert bi.shape == (2, 4) and np.array_equal(bi[0], items)


def test_from_arrays(ctx):
    users = np.repeat(np.arange(20, dtype=np.int64), 6)
    items = (np.arange(120, dtype=np.int64) * 7) % 13 + 100
    ds = rs.Dataset.from_arrays(ctx, users, items, times=np.arange(120))
    assert ds.n_users == 20 and ds.n_events == 120
    assert ds.user_name(0) == "0"
    assert ds.item_name(ds.item_id("100")) == "100"
    assert ds.user_times(0) is not None


def test_options(ctx):
    o = rs.Options(ctx, {"model.dim": 32}, trainer__lr=0.01, eval__exclude_history=False)
    assert o.get_int("model.dim") == 32 and o["model.dim"] == "32"
    assert o.get_float("trainer.lr") == 0.01
    assert o.get("eval.exclude_history") == "false"
    keys = o.keys()
    assert "model.dim" in keys and len(keys) == len(set(keys)) > 10
    d = o.describe()
    assert d["model.dim"]["default"] != "32"


def test_progress_callback(ctx, opts):
    ds = rs.Dataset.synthetic(ctx, opts)
    model = rs.Model(ctx, opts, ds)
    t = rs.Trainer(ctx, model, ds, opts)
    seen = []
    t.set_progress(seen.append)
    t.run_epoch()
    assert seen and seen[-1].step == seen[-1].steps and seen[-1].epoch == 1
    t.set_progress(lambda p: p.step >= 2)       # stop after two batches
    with pytest.raises(rs.RecsysError) as e:
        t.run_epoch()
    assert e.value.status == rs.Status.E_ABORTED

    def boom(p):
        raise ValueError("from the callback")
    t.set_progress(boom)
    with pytest.raises(ValueError, match="from the callback"):
        t.run_epoch()
    t.set_progress(None)
    assert math.isfinite(t.run_epoch())


def test_log_callback_settable(ctx):
    lines = []
    ctx.set_log(lambda level, msg: lines.append((level, msg)))
    ctx.set_log(None)


def test_context_properties(ctx):
    assert ctx.threads == 2
    assert ctx.isa in ("scalar", "avx2", "avx512")
    assert ctx.kernel_name(0).startswith("gemm")
    assert ctx.kernel_name(999) is None
    with pytest.raises(rs.RecsysError, match="unknown ISA"):
        ctx.set_max_isa("sse9")
    ctx.set_max_isa("scalar")
    assert ctx.isa == "scalar"


def test_apen_and_perflaw(ctx, opts):
    a = rs.ApEn(ctx, opts)
    assert a.sequence([1, 2, 1, 2, 1, 2, 1, 2]) < a.sequence([1, 5, 2, 7, 3, 3, 9, 4])
    assert math.isfinite(a.numeric([1.0, 2.0, 1.5, 3.0, 2.5, 1.0]))
    ds = rs.Dataset.synthetic(ctx, opts)
    mean, per_user, used = a.dataset(ds)
    assert per_user.shape == (ds.n_users,) and used > 0 and math.isfinite(mean)
    p = rs.PerfLaw(ctx)
    with pytest.raises(rs.RecsysError):
        p.fit()                                     # no observations
    rng = np.random.default_rng(0)
    for n in (1, 2, 4, 8):
        for h in (16, 32, 64, 128):
            for d in (1.0, 4.0, 16.0):
                p.add(n, h, d, 0.1 + 0.02 * np.log(n * h * d) + rng.normal(0, 1e-3))
    try:
        p.fit()
    except rs.RecsysError as e:                    # an ill-posed fit is still an error value
        assert e.message
        return
    params, errs, r2 = p.params()
    assert params.shape == (rs.PerfLaw.N_PARAMS,)
    assert math.isfinite(p.predict(2, 32, 4.0))
    bl, bh, bm = p.best_size(4.0, [1, 2], [16, 32])
    assert bl in (1, 2) and bh in (16, 32)
