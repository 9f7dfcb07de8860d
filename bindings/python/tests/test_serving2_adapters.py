"""Tensors by name, user states, adapters and adapter stores."""
import numpy as np
import pytest

import librecsys as rs


@pytest.fixture(scope="module")
def setup(trained):
    return trained


def test_tensor_round_trip_blank_model(setup):
    ctx, opts, ds, model = setup
    infos = model.tensors_info()
    assert infos and all(t.numel == int(np.prod(t.shape)) for t in infos)
    blank = rs.Model.new_blank(ctx, opts, model.n_items)
    assert blank.tensor_count == model.tensor_count
    sd = model.state_dict(ctx)
    blank.load_state_dict(ctx, sd)
    for name, v in sd.items():
        assert np.array_equal(blank.get_tensor(ctx, name), v)
    h = ds.user_items(3)
    with rs.Session(ctx, model) as s1, rs.Session(ctx, blank) as s2:
        assert np.array_equal(s1.score(h), s2.score(h))
    # in-place out and item ids
    t = infos[0]
    out = np.empty(t.numel, np.float32)
    assert model.get_tensor(ctx, t.name, out=out) is out
    blank.set_item_ids(ctx, ["x%d" % i for i in range(1, blank.n_items + 1)])
    assert blank.item_id("x5") == 5 and blank.item_name(7) == "x7"


def test_tensor_errors_carry_message(setup):
    ctx, opts, ds, model = setup
    with pytest.raises(rs.RecsysError) as e:
        model._tensor("no.such.tensor")
    assert e.value.status == rs.Status.E_NOT_FOUND
    with pytest.raises(rs.RecsysError) as e:
        ctx.check(rs.lib.recsys_model_get_tensor(ctx._ptr(), model._ptr(), b"nope", None, 0))
    assert e.value.message
    name = model.tensor_info(0).name
    with rs.Session(ctx, model):  # a held model refuses set_tensor
        with pytest.raises(rs.RecsysError) as e:
            model.set_tensor(ctx, name, model.get_tensor(ctx, name))
    assert e.value.status == rs.Status.E_INVALID and e.value.message


def test_user_state_equals_full_request(setup):
    ctx, opts, ds, model = setup
    h = ds.user_items(5)
    st = rs.UserState(model)
    st.extend(h)
    assert st.nbytes > 0
    win, _ = st.window()
    assert np.array_equal(win, h[-len(win):])
    with rs.Session(ctx, model) as s:
        a = s.score_request(st.request())
        assert np.array_equal(s.score_request(st.request(copy=False)), a)
        v, _ = st.window(copy=False)
        assert not v.flags.writeable and np.array_equal(v, win)
        b = s.score_request(rs.Request(h))
        assert np.array_equal(a, b)
        # (exclude_history would exclude only the window's items)
        i1, s1 = s.topk_request(st.request(k=5))
        i2, s2 = s.topk_request(rs.Request(h, k=5))
        assert np.array_equal(i1, i2) and np.array_equal(s1, s2)
    st.clear()
    assert st.window()[0].size == 0
    with pytest.raises(rs.RecsysError) as e:
        st.append(model.n_items + 5)
    assert e.value.message
    st.close()
    del model  # the state keeps no dangling model


def test_adapter_buffer_round_trip(ctx, setup):
    _, opts, ds, model = setup
    a = rs.Adapter(ctx, model, opts)
    kind, rank, n = a.info()
    assert kind == rs.AdapterKind.USER and rank > 0 and n > 0
    p = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.01
    a.set_params(p)
    assert np.array_equal(a.get_params(), p)
    b = rs.Adapter.from_bytes(ctx, model, a.to_bytes())
    assert np.array_equal(b.get_params(), p) and b.info() == a.info()
    with pytest.raises(rs.RecsysError) as e:
        rs.Adapter.from_bytes(ctx, model, a.to_bytes()[:-3])
    assert e.value.status == rs.Status.E_FORMAT and e.value.message
    bad = p.copy()
    bad[0] = np.nan
    with pytest.raises(rs.RecsysError) as e:
        a.set_params(bad)
    assert e.value.status == rs.Status.E_NUMERIC and "finite" in e.value.message


def test_adapter_keeps_model_alive(ctx, opts):
    ds = rs.Dataset.synthetic(ctx, opts)
    m = rs.Model(ctx, opts, ds)
    a = rs.Adapter(ctx, m, opts)
    m.close()
    del m
    assert a.n_params > 0 and a.fold().n_items > 0


def test_merge_and_fold(ctx, setup):
    _, opts, ds, model = setup
    rng = np.random.default_rng(1)
    ads = []
    for _ in range(2):
        a = rs.Adapter(ctx, model, opts)
        a.set_params(rng.standard_normal(a.n_params).astype(np.float32) * 0.01)
        ads.append(a)
    m = rs.Adapter.merge(ctx, ads, [0.5, 0.5], opts)
    assert isinstance(m, rs.Adapter) and m.kind == rs.AdapterKind.USER
    assert m.n_params == ads[0].n_params
    folded = ads[0].fold()
    assert isinstance(folded, rs.Model) and folded.n_items == model.n_items
    # a fresh adapter (B = 0) folds to the same scores
    z = rs.Adapter(ctx, model, opts).fold()
    h = ds.user_items(2)
    with rs.Session(ctx, model) as s1, rs.Session(ctx, z) as s2:
        np.testing.assert_allclose(s1.score(h)[1:], s2.score(h)[1:], rtol=1e-5, atol=1e-5)
    with pytest.raises(rs.RecsysError):
        rs.Adapter.merge(ctx, [])


def test_request_with_adapter(ctx, setup):
    _, opts, ds, model = setup
    a = rs.Adapter(ctx, model, opts)
    a.set_params(np.random.default_rng(3).standard_normal(a.n_params).astype(np.float32) * 0.3)
    h = ds.user_items(2)
    with rs.Session(ctx, model) as s, rs.Session(ctx, a.fold()) as sf:
        got = s.score_request(rs.Request(h, adapter=a))
        np.testing.assert_allclose(got[1:], sf.score_request(rs.Request(h))[1:],
                                   rtol=1e-5, atol=1e-5)
        assert not np.allclose(got[1:], s.score_request(rs.Request(h))[1:])
        reqs = [rs.Request(h, k=4, adapter=a), rs.Request(h, k=4)]
        items, scores = s.topk_batch(reqs)
        for i, r in enumerate(reqs):  # a mixed batch == one call per request
            i1, s1 = s.topk_request(r)
            assert np.array_equal(items[i], i1) and np.array_equal(scores[i], s1)


def test_store_round_trip(ctx, setup, tmp_path):
    _, opts, ds, model = setup
    path = str(tmp_path / "users.store")
    rs.AdapterStore.create(ctx, model, path, 4, opts)
    a = rs.Adapter(ctx, model, opts)
    p = np.random.default_rng(2).standard_normal(a.n_params).astype(np.float32) * 0.01
    a.set_params(p)
    with rs.AdapterStore(ctx, model, path, writable=True, opts=opts) as st:
        with pytest.raises(rs.RecsysError) as e:
            st.get(1)
        assert e.value.status == rs.Status.E_NOT_FOUND and e.value.message
        st.put(1, a, sync=True)
        st.pin(1)
        got = st.get(1)
        np.testing.assert_array_equal(got.get_params(), p)
        s = st.stats()
        assert s.n_users == 4 and s.hits + s.misses >= 1
        st.pin(1, False)
    with open(path, "rb") as f:
        data = f.read()
    ro = rs.AdapterStore.from_bytes(ctx, model, data, opts)
    np.testing.assert_array_equal(ro.get(1).get_params(), p)
    with pytest.raises(rs.RecsysError):
        ro.put(1, a)
    ro2 = rs.AdapterStore(ctx, model, path)
    assert ro2.stats().n_users == 4


def test_adapter_train_and_evaluate_adapters(ctx, setup, tmp_path):
    _, opts, ds, model = setup
    o = rs.Options(ctx, {**{k: v for k, v in opts.to_dict().items()}, "adapter.epochs": 1,
                         "adapter.user_steps": 2})
    shared = rs.Adapter(ctx, model, o, rs.AdapterKind.SHARED)
    loss = shared.train(ds, -1, o)
    assert np.isfinite(loss)
    user = rs.Adapter(ctx, model, o)
    assert np.isfinite(user.train(ds, 0, o))
    assert np.isfinite(user.train_sequence([1, 2, 3, 2], opts=o))
    with pytest.raises(rs.RecsysError):
        user.train_sequence([1], opts=o)
    base = rs.evaluate(ctx, model, ds, opts)
    same = rs.evaluate_adapters(ctx, model, ds, opts)
    assert same == base
    m, ranks = rs.evaluate_adapters(ctx, model, ds, opts, adapter=shared, user_ranks=True)
    assert ranks.shape == (ds.n_users,) and "NDCG@10" in m
    path = str(tmp_path / "s.store")
    rs.AdapterStore.create(ctx, model, path, ds.n_users, o)
    with rs.AdapterStore(ctx, model, path, writable=True, opts=o) as st:
        st.put(0, user)
        assert "HR@10" in rs.evaluate_adapters(ctx, model, ds, opts, store=st)
    with pytest.raises(rs.RecsysError) as e:
        rs.Adapter(ctx, model, o).train(ds, 10**9, o)
    assert e.value.message


def test_user_state_cached_keys_values(ctx):
    """A model positioned from the start: topk_state / score_state encode only
    the appended events (keys and values kept in the state) and agree with
    the whole history's scores."""
    opts = rs.Options(ctx)
    for k, v in {"model.type": "hstu", "model.positions": "start", "model.time_bias": "on",
                 "model.max_len": 12, "model.dim": 16}.items():
        opts.set(k, v)
    model = rs.Model.new_blank(ctx, opts, 50)
    assert model.info().positions_from_start
    st = rs.UserState(model)
    items, times = [], []
    with rs.Session(ctx, model) as s:
        for e in range(15):
            items.append(1 + (e * 7) % 50)
            times.append(100 * e * e)
            st.append(items[-1], times[-1])
            a = s.score_state(st)
            b = s.score_request(rs.Request(items, times=times))
            assert np.allclose(a[1:], b[1:], rtol=1e-5, atol=1e-6)
            i1, s1 = s.topk_state(st, k=4)
            i2, s2 = s.topk_request(rs.Request(items[-12:], times=times[-12:], k=4))
            assert np.allclose(s1, s2, rtol=1e-5, atol=1e-6)
        with pytest.raises(TypeError):
            s.topk_state(st, history=[1, 2])
