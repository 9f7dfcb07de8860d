"""Objects keep alive what they borrow and may be freed in any order."""
import gc
import itertools
import math
import random

import numpy as np

import librecsys as rs
from conftest import SMALL


def test_trainer_keeps_temporary_dataset():
    # The old binding freed the dataset at once here: the next epoch read
    # freed memory and returned a NaN loss with status OK.
    ctx = rs.Context(threads=2, seed=7)
    opts = rs.Options(ctx, SMALL)
    model = rs.Model(ctx, opts, rs.Dataset.synthetic(ctx, opts))
    trainer = rs.Trainer(ctx, model, rs.Dataset.synthetic(ctx, opts), opts)
    gc.collect()
    for _ in range(2):
        assert math.isfinite(trainer.run_epoch())


def test_close_in_any_order():
    names = ["ctx", "opts", "ds", "model", "trainer", "session"]
    for order in itertools.islice(itertools.permutations(names), 0, 720, 37):
        ctx = rs.Context(threads=1, seed=1)
        objs = {"ctx": ctx}
        objs["opts"] = rs.Options(ctx, SMALL)
        objs["ds"] = rs.Dataset.synthetic(ctx, objs["opts"])
        objs["model"] = rs.Model(ctx, objs["opts"], objs["ds"])
        objs["trainer"] = rs.Trainer(ctx, objs["model"], objs["ds"], objs["opts"])
        objs["session"] = rs.Session(ctx, objs["model"])
        view = objs["ds"].user_items(0)
        for i, name in enumerate(order):
            objs[name].close()
            # the survivors still work
            if not objs["trainer"].closed:
                assert math.isfinite(objs["trainer"].run_epoch())
            if not objs["session"].closed:
                objs["session"].topk(view, k=3)
        assert view.sum() > 0      # the view outlived every wrapper


def test_garbage_collector_order():
    rng = random.Random(3)
    for _ in range(10):
        ctx = rs.Context(threads=1, seed=1)
        opts = rs.Options(ctx, SMALL)
        ds = rs.Dataset.synthetic(ctx, opts)
        model = rs.Model(ctx, opts, ds)
        t = rs.Trainer(ctx, model, ds, opts)
        s = rs.Session(ctx, model)
        objs = [ctx, opts, ds, model, t, s]
        # a reference cycle through every object: the collector picks the order
        for a, b in zip(objs, objs[1:] + objs[:1]):
            a.cycle = b
        rng.shuffle(objs)
        del ctx, opts, ds, model, t, s, a, b
        objs.clear()
        gc.collect()


def test_view_keeps_dataset_alive():
    ctx = rs.Context(threads=1)
    ds = rs.Dataset.synthetic(ctx, rs.Options(ctx, SMALL))
    v = ds.user_items(1)
    expect = v.copy()
    del ds, ctx
    gc.collect()
    junk = [np.ones(10000) for _ in range(50)]  # reuse freed memory, if it were freed
    assert np.array_equal(v, expect)
    del junk
