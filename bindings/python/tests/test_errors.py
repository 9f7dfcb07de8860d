"""Error paths raise RecsysError with the status and the C message."""
import pytest

import librecsys as rs


def test_ctx_call_error_has_message(opts, ctx):
    with pytest.raises(rs.RecsysError) as e:
        opts.set("model.no_such_key", 1)
    assert e.value.status == rs.Status.E_NOT_FOUND
    assert e.value.name == "RECSYS_E_NOT_FOUND"
    assert "no_such_key" in e.value.message
    assert "no_such_key" in ctx.errmsg
    opts.set("model.dim", 16)           # success clears the message
    assert ctx.errmsg == ""
    assert rs.lib.recsys_last_errmsg() == b""


def test_bad_value(opts):
    with pytest.raises(rs.RecsysError, match="model.dim") as e:
        opts.set("model.dim", "many")
    assert e.value.status == rs.Status.E_INVALID


def test_ctxless_getters_have_messages(opts, ctx):
    ds = rs.Dataset.synthetic(ctx, opts)
    with pytest.raises(rs.RecsysError, match="statistic") as e:
        ds.stat(99)
    assert e.value.status == rs.Status.E_INVALID
    with pytest.raises(rs.RecsysError, match="nope"):
        ds.item_id("nope")
    with pytest.raises(rs.RecsysError, match="out of range"):
        ds.user_items(10 ** 9)
    m = rs.Model(ctx, opts, ds)
    with pytest.raises(rs.RecsysError, match="trainer.lr") as e:
        m.get("trainer.lr")
    assert e.value.status == rs.Status.E_NOT_FOUND
    assert m.get("model.dim") == "16"


def test_io_and_format_errors(ctx, tmp_path):
    with pytest.raises(rs.RecsysError, match="no/such/file") as e:
        rs.Dataset(ctx, str(tmp_path / "no/such/file.txt"))
    assert e.value.status == rs.Status.E_IO
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(rs.RecsysError) as e:
        rs.Model.load(ctx, str(bad))
    assert e.value.status == rs.Status.E_FORMAT and e.value.message


def test_yaml_error_location(opts, ctx):
    with pytest.raises(rs.RecsysError, match=r"cfg.yaml:2:\d+") as e:
        opts.load_yaml_string("model:\n  dimm: 3\n", "cfg.yaml")
    assert e.value.status == rs.Status.E_PARSE


def test_closed_object(opts):
    opts.close()
    with pytest.raises(rs.RecsysError, match="closed") as e:
        opts.get("model.dim")
    assert e.value.status == rs.Status.E_STATE


def test_session_errors(trained):
    ctx, _, _, model = trained
    s = rs.Session(ctx, model)
    with pytest.raises(rs.RecsysError, match="item"):
        s.topk([model.n_items + 5], k=3)
    import numpy as np
    with pytest.raises(rs.RecsysError):
        s.score([1, 2], out=np.empty(3, np.float32))
