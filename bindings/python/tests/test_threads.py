"""Concurrent scoring: one shared model, a Context and Session per thread
(the C docs allow it; ctypes releases the GIL during calls)."""
import threading

import numpy as np

import librecsys as rs


def test_concurrent_scoring(trained):
    _, _, ds, model = trained
    users = list(range(min(ds.n_users, 60)))
    base_ctx = rs.Context(threads=1)
    base = rs.Session(base_ctx, model)
    expect = {u: base.topk(ds.user_items(u), k=5) for u in users}
    errors = []

    def work(seed):
        try:
            with rs.Context(threads=1, seed=seed) as ctx, rs.Session(ctx, model) as s:
                for _ in range(3):
                    for u in users:
                        items, scores = s.topk(ds.user_items(u), k=5)
                        if not (np.array_equal(items, expect[u][0]) and
                                np.array_equal(scores, expect[u][1])):
                            errors.append(u)
                        # the thread's last error is its own
                        try:
                            ds.stat(1000 + seed)
                        except rs.RecsysError as e:
                            if str(1000 + seed) not in e.message:
                                errors.append(("message", seed, e.message))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
