"""The cffi ABI-mode path: cdef generated from the header, ffi.dlopen."""
import math

import pytest

cffi = pytest.importorskip("cffi")

import librecsys as rs  # noqa: E402
from librecsys.cffi_abi import check, errmsg, ffi, lib  # noqa: E402


def _new(fn, *args, free):
    out = ffi.new(fn[1])
    check(fn[0](*args, out), args[0] if args and ffi.typeof(args[0]).kind == "pointer" else ffi.NULL)
    return ffi.gc(out[0], free)


def test_cffi_train_evaluate_topk():
    assert lib.recsys_version_number() == rs.lib.recsys_version_number()
    assert lib.RECSYS_E_NOT_FOUND == -10 and lib.RECSYS_STAT_ITEMS == 1
    pctx = ffi.new("recsys_ctx **")
    check(lib.recsys_ctx_new(pctx))
    ctx = ffi.gc(pctx[0], lib.recsys_ctx_free)
    check(lib.recsys_ctx_set_threads(ctx, 2), ctx)
    po = ffi.new("recsys_opts **")
    check(lib.recsys_opts_new(ctx, po), ctx)
    opts = po[0]
    for k, v in {"data.synthetic_users": "300", "data.synthetic_items": "80",
                 "model.max_len": "16", "model.dim": "16", "model.blocks": "1"}.items():
        check(lib.recsys_opts_set(opts, k.encode(), v.encode()), ctx)
    st = lib.recsys_opts_set(opts, b"model.nope", b"1")
    with pytest.raises(rs.RecsysError, match="model.nope"):
        check(st, ctx)
    assert "model.nope" in errmsg(ctx)
    pds = ffi.new("recsys_dataset **")
    check(lib.recsys_dataset_synthetic(ctx, opts, pds), ctx)
    pm = ffi.new("recsys_model **")
    check(lib.recsys_model_new(ctx, opts, pds[0], pm), ctx)
    pt = ffi.new("recsys_trainer **")
    check(lib.recsys_trainer_new(ctx, pm[0], pds[0], opts, pt), ctx)
    calls = []

    @ffi.callback("int(void *, const recsys_progress *)")
    def progress(user, p):
        calls.append(p.step)
        return 0
    check(lib.recsys_trainer_set_progress(pt[0], progress, ffi.NULL), ctx)
    loss = ffi.new("double *")
    check(lib.recsys_trainer_run_epoch(pt[0], loss), ctx)
    assert math.isfinite(loss[0]) and calls
    pmet = ffi.new("recsys_metrics **")
    check(lib.recsys_evaluate(ctx, pm[0], pds[0], opts, pmet), ctx)
    v = ffi.new("double *")
    check(lib.recsys_metrics_get(pmet[0], b"NDCG@10", v))
    assert 0 <= v[0] <= 1
    with pytest.raises(rs.RecsysError, match="NOPE"):
        check(lib.recsys_metrics_get(pmet[0], b"NOPE", v))
    items, n = ffi.new("const int32_t **"), ffi.new("size_t *")
    check(lib.recsys_dataset_user_items(pds[0], 0, items, ffi.NULL, n))
    ps = ffi.new("recsys_session **")
    check(lib.recsys_session_new(ctx, pm[0], ps), ctx)
    top, sc = ffi.new("int32_t[5]"), ffi.new("float[5]")
    check(lib.recsys_session_topk(ps[0], items[0], n[0], 5, 1, top, sc), ctx)
    assert all(1 <= top[i] for i in range(5)) and sc[0] >= sc[4]
    lib.recsys_session_free(ps[0])
    lib.recsys_metrics_free(pmet[0])
    lib.recsys_trainer_free(pt[0])
    lib.recsys_model_free(pm[0])
    lib.recsys_dataset_free(pds[0])
    lib.recsys_opts_free(opts)


def test_cdef_declares_every_function():
    from librecsys import _decls
    for name in _decls.FUNCTIONS:
        assert getattr(lib, name) is not None
