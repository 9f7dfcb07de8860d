"""Thin ctypes binding for librecsys (the C ABI in include/librecsys/recsys.h).

Every C call returns a status; a non-zero status raises RecsysError carrying
the context's error message. Set LIBRECSYS_PATH to the .so to load a
specific build; otherwise librecsys.so.0 is looked up by the dynamic loader.
"""
import ctypes
import os

_SONAME = "librecsys.so.0"


class RecsysError(RuntimeError):
    def __init__(self, status, message):
        super().__init__(f"{message} (status {status})")
        self.status = status


def _load():
    path = os.environ.get("LIBRECSYS_PATH", _SONAME)
    lib = ctypes.CDLL(path)
    P = ctypes.c_void_p
    PP = ctypes.POINTER(ctypes.c_void_p)
    sig = {
        "recsys_version_number": (ctypes.c_int, []),
        "recsys_version_string": (ctypes.c_char_p, []),
        "recsys_status_str": (ctypes.c_char_p, [ctypes.c_int]),
        "recsys_ctx_new": (ctypes.c_int, [PP]),
        "recsys_ctx_free": (None, [P]),
        "recsys_ctx_errmsg": (ctypes.c_char_p, [P]),
        "recsys_ctx_set_threads": (ctypes.c_int, [P, ctypes.c_int]),
        "recsys_ctx_set_seed": (ctypes.c_int, [P, ctypes.c_uint64]),
        "recsys_ctx_isa": (ctypes.c_char_p, [P]),
        "recsys_opts_new": (ctypes.c_int, [P, PP]),
        "recsys_opts_free": (None, [P]),
        "recsys_opts_set": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_char_p]),
        "recsys_opts_load_yaml": (ctypes.c_int, [P, ctypes.c_char_p]),
        "recsys_dataset_open": (ctypes.c_int, [P, ctypes.c_char_p, P, PP]),
        "recsys_dataset_free": (None, [P]),
        "recsys_dataset_stat": (ctypes.c_int, [P, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]),
        "recsys_model_new": (ctypes.c_int, [P, P, P, PP]),
        "recsys_model_free": (None, [P]),
        "recsys_model_save": (ctypes.c_int, [P, P, ctypes.c_char_p]),
        "recsys_model_load": (ctypes.c_int, [P, ctypes.c_char_p, PP]),
        "recsys_model_n_params": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_int64)]),
        "recsys_trainer_new": (ctypes.c_int, [P, P, P, P, PP]),
        "recsys_trainer_free": (None, [P]),
        "recsys_trainer_run_epoch": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_double)]),
        "recsys_evaluate": (ctypes.c_int, [P, P, P, P, PP]),
        "recsys_evaluate_popularity": (ctypes.c_int, [P, P, P, PP]),
        "recsys_metrics_free": (None, [P]),
        "recsys_metrics_count": (ctypes.c_int, [P]),
        "recsys_metrics_name": (ctypes.c_char_p, [P, ctypes.c_int]),
        "recsys_metrics_value": (ctypes.c_double, [P, ctypes.c_int]),
        "recsys_session_new": (ctypes.c_int, [P, P, PP]),
        "recsys_session_free": (None, [P]),
        "recsys_session_topk": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                               ctypes.c_int, ctypes.c_int,
                                               ctypes.POINTER(ctypes.c_int32),
                                               ctypes.POINTER(ctypes.c_float)]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


lib = _load()
STAT_USERS, STAT_ITEMS, STAT_EVENTS = 0, 1, 2


class Context:
    def __init__(self, threads=0, seed=42):
        h = ctypes.c_void_p()
        st = lib.recsys_ctx_new(ctypes.byref(h))
        if st:
            raise RecsysError(st, "recsys_ctx_new failed")
        self.h = h
        self.check(lib.recsys_ctx_set_threads(h, threads))
        self.check(lib.recsys_ctx_set_seed(h, seed))

    def check(self, st):
        if st:
            raise RecsysError(st, lib.recsys_ctx_errmsg(self.h).decode())

    def close(self):
        if self.h:
            lib.recsys_ctx_free(self.h)
            self.h = None


class _Handle:
    _free = None

    def close(self):
        if self.h:
            type(self)._free(self.h)
            self.h = None

    def __del__(self):
        self.close()


class Options(_Handle):
    _free = lib.recsys_opts_free

    def __init__(self, ctx, **settings):
        self.h = ctypes.c_void_p()
        ctx.check(lib.recsys_opts_new(ctx.h, ctypes.byref(self.h)))
        self.ctx = ctx
        for key, value in settings.items():
            self.set(key.replace("__", "."), value)

    def set(self, key, value):
        self.ctx.check(lib.recsys_opts_set(self.h, key.encode(), str(value).encode()))


class Dataset(_Handle):
    _free = lib.recsys_dataset_free

    def __init__(self, ctx, path, opts):
        self.h = ctypes.c_void_p()
        ctx.check(lib.recsys_dataset_open(ctx.h, path.encode(), opts.h, ctypes.byref(self.h)))

    def stat(self, which):
        v = ctypes.c_double()
        lib.recsys_dataset_stat(self.h, which, ctypes.byref(v))
        return v.value


class Model(_Handle):
    _free = lib.recsys_model_free

    def __init__(self, ctx, opts, ds):
        self.h = ctypes.c_void_p()
        ctx.check(lib.recsys_model_new(ctx.h, opts.h, ds.h, ctypes.byref(self.h)))


class Trainer(_Handle):
    _free = lib.recsys_trainer_free

    def __init__(self, ctx, model, ds, opts):
        self.h = ctypes.c_void_p()
        self.ctx = ctx
        ctx.check(lib.recsys_trainer_new(ctx.h, model.h, ds.h, opts.h, ctypes.byref(self.h)))

    def run_epoch(self):
        loss = ctypes.c_double()
        self.ctx.check(lib.recsys_trainer_run_epoch(self.h, ctypes.byref(loss)))
        return loss.value


def _metrics(ctx, st, h):
    ctx.check(st)
    out = {lib.recsys_metrics_name(h, i).decode(): lib.recsys_metrics_value(h, i)
           for i in range(lib.recsys_metrics_count(h))}
    lib.recsys_metrics_free(h)
    return out


def evaluate(ctx, model, ds, opts):
    h = ctypes.c_void_p()
    return _metrics(ctx, lib.recsys_evaluate(ctx.h, model.h, ds.h, opts.h, ctypes.byref(h)), h)


def evaluate_popularity(ctx, ds, opts):
    h = ctypes.c_void_p()
    return _metrics(ctx, lib.recsys_evaluate_popularity(ctx.h, ds.h, opts.h, ctypes.byref(h)), h)
