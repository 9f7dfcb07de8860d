"""The serving API: model info and id lookups, item table views, requests
(times, exclusions, candidates), the batch call and user vectors."""
import gc

import numpy as np
import pytest

import librecsys as rs
from conftest import SMALL


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A model trained on external ids 1000.., saved and reloaded (no dataset)."""
    ctx = rs.Context(threads=2, seed=3)
    opts = rs.Options(ctx, dict(SMALL, **{"model.max_len": 8}))
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(60, dtype=np.int64), 12)
    items = 1000 + rng.integers(0, 40, users.size).astype(np.int64)
    times = np.arange(users.size, dtype=np.int64) * 60
    ds = rs.Dataset.from_arrays(ctx, users, items, times, opts)
    model = rs.Model(ctx, opts, ds)
    t = rs.Trainer(ctx, model, ds, opts)
    t.run_epoch()
    t.close()
    path = str(tmp_path_factory.mktemp("serve") / "m.ckpt")
    model.save(ctx, path)
    return ctx, opts, ds, model, rs.Model.load(ctx, path)


def test_model_info_after_reload(served):
    ctx, opts, ds, model, loaded = served
    a, b = model.info(), loaded.info()
    assert a == b
    assert b.type == rs.ModelType.SASREC and b.n_items == ds.n_items == loaded.n_items
    assert b.dim == 16 and b.max_len == 8 and b.blocks == 1
    assert b.n_params == loaded.n_params and b.has_item_ids and b.data_has_time
    assert b.n_users == ds.n_users


def test_lookups_by_external_id(served):
    ctx, opts, ds, model, loaded = served
    del model
    for ext in ("1000", "1017", 1039):
        i = loaded.item_id(ext)
        assert i == ds.item_id(str(ext)) and loaded.item_name(i) == str(ext)
    assert list(loaded.item_ids(["1001", "1002"])) == [ds.item_id("1001"), ds.item_id("1002")]
    with pytest.raises(rs.RecsysError) as e:
        loaded.item_id("nope")
    assert e.value.status == rs.Status.E_NOT_FOUND


def test_item_table_view_keeps_model_alive(served):
    ctx, _, ds, _, loaded = served
    info = loaded.info()
    t1, t2 = loaded.item_table(), loaded.item_table()
    assert t1.shape == (info.n_items + 1, info.dim) and t1.dtype == np.float32
    assert t1.ctypes.data == t2.ctypes.data and not t1.flags.writeable
    # A view of a model whose only Python reference is dropped stays valid.
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.ckpt")
        loaded.save(ctx, p)
        m = rs.Model.load(ctx, p)
        view, vecs = m.item_table(), m.item_vectors()
        copy = view.copy()
        m.close()
        del m
        gc.collect()
        junk = [np.ones(10000, np.float32) for _ in range(20)]  # noqa: F841
        assert np.array_equal(view, copy) and np.array_equal(view, t1)
        assert vecs.shape == view.shape


def test_user_vector_dot_item_vectors_is_score(served):
    ctx, _, ds, _, loaded = served
    s = rs.Session(ctx, loaded)
    h = ds.user_items(5)
    u = s.user_vector(h, times=ds.user_times(5))
    scores = s.score_request(h, times=ds.user_times(5))
    v = loaded.item_vectors()
    assert np.allclose(v[1:] @ u, scores[1:], rtol=1e-4, atol=1e-4)


def test_request_times_exclude_candidates(served):
    ctx, _, ds, _, loaded = served
    s = rs.Session(ctx, loaded)
    n = loaded.n_items
    h, t = ds.user_items(2), ds.user_times(2)
    plain = s.score_request(h)
    assert np.array_equal(plain, s.score(h))
    timed = s.score_request(h, times=t)
    assert timed.shape == (n + 1,) and timed[0] == -np.inf
    ex = s.score_request(rs.Request(h, times=t, exclude=[1, 2], exclude_history=True))
    assert ex[1] == ex[2] == -np.inf and np.all(ex[np.unique(h)] == -np.inf)
    mask = np.zeros(n + 1, np.uint8)
    mask[3] = 1
    assert s.score_request(h, times=t, exclude_mask=mask)[3] == -np.inf
    with pytest.raises(rs.RecsysError):
        s.score_request(h, exclude_mask=np.zeros(n, np.uint8))
    cands = np.array([5, 1, 9], np.int32)
    cs = s.score_request(h, times=t, candidates=cands)
    assert cs.shape == (3,) and np.allclose(cs, timed[cands])
    items, scores = s.topk_request(h, times=t, k=2, candidates=cands)
    order = np.argsort(-timed[cands], kind="stable")[:2]
    assert list(items) == list(cands[order]) and np.allclose(scores, timed[cands][order])
    items, scores = s.topk_request(rs.Request(h, times=t, k=5, candidates=[4, 6], exclude=[4]))
    assert list(items) == [6]                 # fewer than k eligible
    with pytest.raises(rs.RecsysError) as e:
        s.topk_request([n + 5])
    assert e.value.status == rs.Status.E_NOT_FOUND


def test_batch_equals_single(served):
    ctx, _, ds, _, loaded = served
    s = rs.Session(ctx, loaded)
    users = range(12)
    hs = [ds.user_items(u) for u in users]
    ts = [ds.user_times(u) for u in users]
    bi, bs = s.topk_batch(hs, k=7, times=ts)
    assert bi.shape == bs.shape == (12, 7)
    for r, (h, t) in enumerate(zip(hs, ts)):
        i1, s1 = s.topk_request(h, times=t, k=7, exclude_history=True)
        assert np.array_equal(bi[r], i1) and np.array_equal(bs[r], s1)
    # topk() (exclude_history by default) agrees too.
    i0, s0 = s.topk(hs[0], k=7)
    assert np.array_equal(bi[0], i0)
    # The flat form with offsets is used in place.
    flat = np.concatenate(hs).astype(np.int32)
    off = np.cumsum([0] + [len(h) for h in hs])
    fi, fs, cnt = s.topk_batch(flat, k=7, offsets=off, times=np.concatenate(ts), return_counts=True)
    assert np.array_equal(fi, bi) and np.array_equal(fs, bs) and list(cnt) == [7] * 12
    # Requests with their own k and candidates: short rows are padded.
    reqs = [rs.Request(hs[0], k=3), rs.Request(hs[1], k=5, candidates=[1, 2])]
    ri, rsc, cnt = s.topk_batch(reqs, return_counts=True)
    assert ri.shape == (2, 5) and list(cnt) == [3, 2]
    assert np.array_equal(ri[0, :3], s.topk_request(reqs[0])[0]) and ri[1, 2] == 0
    assert rsc[1, 2] == -np.inf
    assert s.topk_batch([], k=4)[0].shape == (0, 4)


def test_shared_pool_and_thread_limited_ctx(served):
    _, _, ds, _, loaded = served
    pool = rs.ThreadPool(2)
    a, b = rs.Context(pool=pool), rs.Context(pool=pool)
    pool.close()                       # the contexts keep the pool
    with pytest.raises(rs.RecsysError) as e:
        a.set_threads(3)
    assert e.value.status == rs.Status.E_STATE
    one = rs.Context(max_threads=1)
    h = ds.user_items(1)
    ref = rs.Session(one, loaded).topk(h, k=5)
    for c in (a, b):
        got = rs.Session(c, loaded).topk(h, k=5)
        assert np.array_equal(got[0], ref[0])
    with pytest.raises(rs.RecsysError):
        rs.ThreadPool(0)
    with pytest.raises(rs.RecsysError):
        rs.Context(max_threads=0)


def test_describe_options():
    d = rs.describe_options()
    assert len(d) == len(rs.Options(rs.Context()).keys())
    dim = d["model.dim"]
    assert dim.type == "int" and dim.min >= 1 and dim.max >= 64 and dim.doc
    assert dim["default"] == dim.default
    kinds = {i.type for i in d.values()}
    assert {"int", "float", "enum", "bool", "string"} <= kinds
    for info in d.values():
        if info.type == "enum":
            assert info.choices and info.default in info.choices
        else:
            assert info.choices is None
        if info.type in ("int", "float"):
            assert info.min <= float(info.default) <= info.max


def test_small_calls(served, tmp_path):
    ctx, opts, ds, model, _ = served
    assert rs.version_number() == rs.HEADER_VERSION
    with pytest.raises(rs.RecsysError):
        model.item_name(10 ** 6)
    st, msg = rs.last_error()
    assert st != rs.Status.OK and msg
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  dim: [oops\n")
    with pytest.raises(rs.RecsysError):
        opts.load_yaml(str(bad))
    loc = ctx.error_location()
    assert loc is not None and loc[0].endswith("bad.yaml") and loc[1] >= 1
    t = rs.Trainer(ctx, rs.Model(ctx, opts, ds), ds, rs.Options(ctx, {"trainer.eval_every": 1}))
    assert not t.eval_due
    t.run_epoch()
    assert t.eval_due
