"""Run the suite against the package in this checkout (not an installed copy)
and the library named by LIBRECSYS_PATH (the build tree's by default)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import librecsys as rs  # noqa: E402

SMALL = {
    "data.synthetic_users": 300, "data.synthetic_items": 80, "data.synthetic_length": 25,
    "model.max_len": 16, "model.dim": 16, "model.blocks": 1, "trainer.batch_size": 64,
    "trainer.lr": 0.005, "eval.split": "test",
}


@pytest.fixture
def ctx():
    with rs.Context(threads=2, seed=7) as c:
        yield c


@pytest.fixture
def opts(ctx):
    return rs.Options(ctx, SMALL)


@pytest.fixture(scope="module")
def trained():
    """(ctx, opts, dataset, model) after 2 epochs, shared by a module."""
    ctx = rs.Context(threads=2, seed=7)
    opts = rs.Options(ctx, SMALL)
    ds = rs.Dataset.synthetic(ctx, opts)
    model = rs.Model(ctx, opts, ds)
    trainer = rs.Trainer(ctx, model, ds, opts)
    for _ in range(2):
        trainer.run_epoch()
    trainer.close()
    return ctx, opts, ds, model
