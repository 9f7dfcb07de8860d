"""librecsys: sequential recommendation (SASRec, HSTU) from Python.

A ctypes binding of the C library (include/librecsys/recsys.h)::

    import librecsys as rs
    with rs.Context(threads=2, seed=7) as ctx:
        opts = rs.Options(ctx, {"data.synthetic_users": 400, "model.dim": 16})
        ds = rs.Dataset.synthetic(ctx, opts)
        model = rs.Model(ctx, opts, ds)
        trainer = rs.Trainer(ctx, model, ds, opts)
        for _ in range(3):
            trainer.run_epoch()
        print(rs.evaluate(ctx, model, ds, opts)["NDCG@10"])
        items, scores = rs.Session(ctx, model).topk(ds.user_items(0), k=10)

Errors raise RecsysError (status, status name and the C message). Objects
keep alive what their C counterparts use (a trainer its ctx, model and
dataset; a session its ctx and model; an options set its ctx), so they may be
closed or collected in any order; close() (or a with block) releases this
wrapper's hold at once, and the C object goes when nothing needs it any more.
Threads: a Context and the objects made with it are used by one thread at a
time; Dataset and Model are read-only and may be shared; to score from
several threads give each thread its own Context and Session (calls release
the GIL). The raw C API is `librecsys.lib` (every function declared) and
`librecsys.cffi_abi` offers the cffi ABI-mode path.
"""
import ctypes
import enum
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _capi, _decls
from ._capi import TYPES, lib

__all__ = [
    "lib", "Status", "RecsysError", "Context", "Options", "Dataset", "Model", "Trainer",
    "Progress", "Session", "ApEn", "PerfLaw", "evaluate", "evaluate_popularity",
    "version", "HEADER_VERSION", "Stat", "ThreadPool", "ModelInfo", "Request", "OptionInfo",
    "describe_options", "ModelType", "OptType", "version_number", "last_error",
    "TensorInfo", "UserState", "evaluate_adapters", "Adapter", "AdapterKind", "AdapterStore", "StoreStats",
]

HEADER_VERSION = _capi.HEADER_VERSION
__version__ = "%d.%d.%d" % (_decls.DEFINES["RECSYS_VERSION_MAJOR"],
                            _decls.DEFINES["RECSYS_VERSION_MINOR"],
                            _decls.DEFINES["RECSYS_VERSION_PATCH"])

Status = enum.IntEnum("Status", {k[len("RECSYS_"):]: v for k, v in
                                 _decls.ENUMS["recsys_status_code"].items()})
Stat = enum.IntEnum("Stat", {k[len("RECSYS_STAT_"):]: v for k, v in _decls.DEFINES.items()
                             if k.startswith("RECSYS_STAT_") and k != "RECSYS_STAT_COUNT"})
STAT_USERS, STAT_ITEMS, STAT_EVENTS = Stat.USERS, Stat.ITEMS, Stat.EVENTS  # older names

ModelType = enum.IntEnum("ModelType", {k[len("RECSYS_MODEL_"):]: v for k, v in _decls.DEFINES.items()
                                       if k.startswith("RECSYS_MODEL_")})
OptType = enum.IntEnum("OptType", {k[len("RECSYS_OPT_"):]: v for k, v in _decls.DEFINES.items()
                                   if k.startswith("RECSYS_OPT_")})

AdapterKind = enum.IntEnum("AdapterKind", {k[len("RECSYS_ADAPTER_"):]: v for k, v in _decls.DEFINES.items()
                                           if k in ("RECSYS_ADAPTER_USER", "RECSYS_ADAPTER_SHARED",
                                                    "RECSYS_ADAPTER_BANK")})

_P_I32 = ctypes.POINTER(ctypes.c_int32)
_P_U8 = ctypes.POINTER(ctypes.c_uint8)
_P_I64 = ctypes.POINTER(ctypes.c_int64)
_P_F32 = ctypes.POINTER(ctypes.c_float)
_P_F64 = ctypes.POINTER(ctypes.c_double)


def version() -> str:
    """Version string of the loaded C library."""
    return lib.recsys_version_string().decode()


def version_number() -> int:
    """Version of the loaded C library as MAJOR*10000 + MINOR*100 + PATCH."""
    return lib.recsys_version_number()


def last_error() -> Tuple["Status", str]:
    """(status, message) of the calling thread's last failing call, or
    (Status.OK, "") when its last call that can fail succeeded."""
    st = lib.recsys_last_error()
    try:
        st = Status(st)
    except ValueError:
        pass
    return st, (lib.recsys_last_errmsg() or b"").decode("utf-8", "replace")


class RecsysError(Exception):
    """A librecsys call failed: `status` (Status), `name` ("RECSYS_E_..."), `message`."""

    def __init__(self, status: int, message: str):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.name = lib.recsys_status_str(int(status)).decode()
        self.message = message
        super().__init__(f"{message} [{self.name}]")


def _message(ctx_ptr=None) -> str:
    """The failing call's message: the thread's last error, else the ctx's."""
    msg = lib.recsys_last_errmsg() or b""
    if not msg and ctx_ptr:
        n = lib.recsys_errmsg_copy(ctx_ptr, None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        lib.recsys_errmsg_copy(ctx_ptr, buf, n + 1)
        msg = buf.value
    return msg.decode("utf-8", "replace")


def _check(status: int, ctx_ptr=None) -> None:
    if status != 0:
        raise RecsysError(status, _message(ctx_ptr) or lib.recsys_status_str(status).decode())


def _enc(s) -> bytes:
    return s if isinstance(s, bytes) else str(s).encode()


class _Owned:
    """One C object and the C objects it uses (kept alive with it). Freed
    when the last Python holder lets go, so any collection order is safe."""
    __slots__ = ("ptr", "_free", "keep", "__weakref__")

    def __init__(self, ptr: int, free, keep: Tuple["_Owned", ...] = ()):
        self.ptr = ptr
        self._free = free
        self.keep = keep

    def __del__(self):
        p, self.ptr = self.ptr, None
        if p:
            self._free(p)


class _Object:
    _h: Optional[_Owned] = None

    def _ptr(self) -> int:
        if self._h is None:
            raise RecsysError(Status.E_STATE, f"{type(self).__name__} is closed")
        return self._h.ptr

    def _adopt(self, out: ctypes.c_void_p, free, keep=()):
        self._h = _Owned(out.value, free, tuple(k for k in keep if k is not None))

    @property
    def closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        """Release this wrapper's hold on the C object (idempotent)."""
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Context(_Object):
    """Thread pool, RNG seed, kernel table and error state (recsys_ctx).
    Use from one thread at a time."""

    def __init__(self, threads: int = 0, seed: int = 42, max_isa: Optional[str] = None, *,
                 max_threads: Optional[int] = None, pool: Optional["ThreadPool"] = None):
        """threads: workers inside calls (0 = online CPUs). max_threads: a pool
        that never has more threads (recsys_ctx_new_with_threads; the caller
        counts as one). pool: run on a ThreadPool shared with other contexts
        (recsys_ctx_new_shared; set_threads then raises E_STATE)."""
        out = ctypes.c_void_p()
        if pool is not None:
            _check(lib.recsys_ctx_new_shared(pool._ptr(), ctypes.byref(out)))
        elif max_threads is not None:
            _check(lib.recsys_ctx_new_with_threads(int(max_threads), ctypes.byref(out)))
        else:
            _check(lib.recsys_ctx_new(ctypes.byref(out)))
        self._adopt(out, lib.recsys_ctx_free)  # the C ctx holds its own pool reference
        self._log_cb = None
        if threads:
            self.set_threads(threads)
        self.set_seed(seed)
        if max_isa:
            self.set_max_isa(max_isa)

    def check(self, status: int) -> None:
        """Raise RecsysError for a non-zero status of a raw call on this ctx."""
        _check(status, self._h.ptr if self._h else None)

    @property
    def errmsg(self) -> str:
        return lib.recsys_ctx_errmsg(self._ptr()).decode("utf-8", "replace")

    def error_location(self) -> Optional[Tuple[str, int, int]]:
        """(file, line, column) of the last error when it was in an input file, else None."""
        f, line, col = ctypes.c_char_p(), ctypes.c_int(), ctypes.c_int()
        st = lib.recsys_ctx_error_location(self._ptr(), ctypes.byref(f), ctypes.byref(line),
                                           ctypes.byref(col))
        if st != 0:
            return None
        return (f.value or b"").decode("utf-8", "replace"), line.value, col.value

    def set_threads(self, n: int) -> None:
        self.check(lib.recsys_ctx_set_threads(self._ptr(), n))

    @property
    def threads(self) -> int:
        return lib.recsys_ctx_threads(self._ptr())

    def set_seed(self, seed: int) -> None:
        self.check(lib.recsys_ctx_set_seed(self._ptr(), seed))

    def set_max_isa(self, isa: str) -> None:
        self.check(lib.recsys_ctx_set_max_isa(self._ptr(), _enc(isa)))

    @property
    def isa(self) -> str:
        return lib.recsys_ctx_isa(self._ptr()).decode()

    def kernel_name(self, kernel: int) -> Optional[str]:
        r = lib.recsys_ctx_kernel_name(self._ptr(), kernel)
        return r.decode() if r else None

    def set_gemm_backend(self, backend: str) -> None:
        self.check(lib.recsys_ctx_set_gemm_backend(self._ptr(), _enc(backend)))

    def set_bf16(self, enable: bool) -> None:
        self.check(lib.recsys_ctx_set_bf16(self._ptr(), int(bool(enable))))

    def set_log(self, fn: Optional[Callable[[int, str], None]]) -> None:
        """Route log lines to fn(level, message), called on the thread that made
        the library call; None drops them. Exceptions in fn are reported and ignored."""
        if fn is None:
            cb = ctypes.cast(None, TYPES["recsys_log_fn"])
        else:
            def tramp(_user, level, msg):
                try:
                    fn(level, msg.decode("utf-8", "replace"))
                except BaseException:  # never unwind into C
                    import traceback
                    traceback.print_exc()
            cb = TYPES["recsys_log_fn"](tramp)
        self.check(lib.recsys_ctx_set_log(self._ptr(), cb, None))
        self._log_cb = cb  # the C side keeps a pointer to it

    def close(self) -> None:
        """Release the ctx; objects still using it keep it alive until they go."""
        self._h = None


class ThreadPool(_Object):
    """A worker pool shared by several contexts (recsys_threadpool):
    Context(pool=p). Reference-counted in C: contexts keep it alive, so it
    may be closed before them. The process never has more than n_threads - 1
    workers however many contexts share it."""

    def __init__(self, n_threads: int):
        out = ctypes.c_void_p()
        _check(lib.recsys_threadpool_new(int(n_threads), ctypes.byref(out)))
        self._adopt(out, lib.recsys_threadpool_free)


@dataclass(frozen=True)
class OptionInfo:
    """One option key as recsys_opts_describe gives it. Also readable as a
    mapping (info["default"])."""
    key: str
    type: str                      # "string", "int", "float", "enum", "bool", "int list"
    default: str
    choices: Optional[List[str]]   # enum: the allowed words
    min: Optional[float]           # int and float: inclusive bounds
    max: Optional[float]
    allowed: Optional[str]         # a phrase on the allowed values, when bounds do not say it
    doc: str

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


def _opt_info(i: int) -> OptionInfo:
    info = TYPES["recsys_opt_info"]()
    info.struct_size = ctypes.sizeof(info)
    _check(lib.recsys_opts_describe(i, ctypes.byref(info)))

    def s(b):
        return None if b is None else b.decode("utf-8", "replace")
    numeric = info.type in (OptType.INT, OptType.FLOAT, OptType.INT_LIST)
    return OptionInfo(key=s(info.key), type=s(info.type_name), default=s(info.default_value) or "",
                      choices=s(info.choices).split("|") if info.choices else None,
                      min=info.min if numeric else None, max=info.max if numeric else None,
                      allowed=s(info.allowed), doc=s(info.doc) or "")


def describe_options() -> Dict[str, OptionInfo]:
    """Every option key -> OptionInfo (type, default, bounds or choices, doc).
    Needs no context."""
    return {info.key: info for info in (_opt_info(i) for i in range(lib.recsys_opts_count(None)))}


class Options(_Object):
    """`section.key` settings (recsys_opts); values may be str, int, float or bool.
    Keeps its Context alive."""

    def __init__(self, ctx: Context, settings: Optional[Mapping[str, Any]] = None, **kw):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_opts_new(ctx._ptr(), ctypes.byref(out)))
        self._adopt(out, lib.recsys_opts_free, (ctx._h,))
        self.ctx = ctx
        for key, value in dict(settings or {}, **{k.replace("__", "."): v for k, v in kw.items()}).items():
            self.set(key, value)

    def _check(self, st):
        _check(st, self.ctx._h.ptr if self.ctx._h else None)

    def set(self, key: str, value: Any) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            self._check(lib.recsys_opts_set_int(self._ptr(), _enc(key), int(value)))
        elif isinstance(value, (float, np.floating)):
            self._check(lib.recsys_opts_set_float(self._ptr(), _enc(key), float(value)))
        else:
            self._check(lib.recsys_opts_set(self._ptr(), _enc(key), _enc(value)))

    def get(self, key: str) -> str:
        v = ctypes.c_char_p()
        self._check(lib.recsys_opts_get(self._ptr(), _enc(key), ctypes.byref(v)))
        return v.value.decode()

    def get_int(self, key: str) -> int:
        v = ctypes.c_int64()
        self._check(lib.recsys_opts_get_int(self._ptr(), _enc(key), ctypes.byref(v)))
        return v.value

    def get_float(self, key: str) -> float:
        v = ctypes.c_double()
        self._check(lib.recsys_opts_get_float(self._ptr(), _enc(key), ctypes.byref(v)))
        return v.value

    __setitem__ = set
    __getitem__ = get

    def keys(self) -> List[str]:
        """Every known key (recsys_opts_count / recsys_opts_key)."""
        p = self._ptr()
        return [lib.recsys_opts_key(p, i).decode() for i in range(lib.recsys_opts_count(p))]

    def to_dict(self) -> Dict[str, str]:
        return {k: self.get(k) for k in self.keys()}

    def describe(self) -> Dict[str, OptionInfo]:
        """key -> OptionInfo (type, default, choices, min, max, allowed, doc);
        see describe_options()."""
        return describe_options()

    def load_yaml(self, path: str) -> None:
        self._check(lib.recsys_opts_load_yaml(self._ptr(), _enc(path)))

    def load_yaml_string(self, text: str, name: str = "<string>") -> None:
        b = _enc(text)
        self._check(lib.recsys_opts_load_yaml_string(self._ptr(), b, len(b), _enc(name)))


def _opts_ptr(opts: Optional[Options]):
    return opts._ptr() if opts is not None else None


def _readonly_view(ptr, n: int, ctype, dtype, owner: _Owned) -> np.ndarray:
    """A read-only NumPy view of C memory that keeps owner alive."""
    if n == 0:
        return np.empty(0, dtype)
    buf = (ctype * n).from_address(ctypes.addressof(ptr.contents))
    buf._owner = owner  # the array's base chain holds buf, buf holds owner
    arr = np.frombuffer(buf, dtype=dtype)
    arr.flags.writeable = False
    return arr


class Dataset(_Object):
    """Per-user chronological item sequences (recsys_dataset). Immutable: may be
    read from several threads. Keeps no ctx (may outlive it)."""

    def __init__(self, ctx: Context, path: str, opts: Optional[Options] = None):
        """Open by path as the CLI does ("synthetic" for the embedded data)."""
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_dataset_open(ctx._ptr(), _enc(path), _opts_ptr(opts), ctypes.byref(out)))
        self._adopt(out, lib.recsys_dataset_free)

    @classmethod
    def _make(cls, ctx, fn, *args) -> "Dataset":
        out = ctypes.c_void_p()
        ctx.check(fn(ctx._ptr(), *args, ctypes.byref(out)))
        self = cls.__new__(cls)
        self._adopt(out, lib.recsys_dataset_free)
        return self

    @classmethod
    def synthetic(cls, ctx: Context, opts: Optional[Options] = None) -> "Dataset":
        return cls._make(ctx, lib.recsys_dataset_synthetic, _opts_ptr(opts))

    @classmethod
    def load(cls, ctx: Context, path: str, opts: Optional[Options] = None) -> "Dataset":
        return cls._make(ctx, lib.recsys_dataset_load, _enc(path), _opts_ptr(opts))

    @classmethod
    def load_sequences(cls, ctx: Context, path: str, times_path: Optional[str] = None,
                       opts: Optional[Options] = None) -> "Dataset":
        return cls._make(ctx, lib.recsys_dataset_load_sequences, _enc(path),
                         _enc(times_path) if times_path else None, _opts_ptr(opts))

    @classmethod
    def from_arrays(cls, ctx: Context, users: Sequence[int], items: Sequence[int],
                    times: Optional[Sequence[int]] = None,
                    opts: Optional[Options] = None) -> "Dataset":
        """From n events with external ids (int64 arrays are passed without a copy)."""
        u = np.ascontiguousarray(users, dtype=np.int64)
        i = np.ascontiguousarray(items, dtype=np.int64)
        t = None if times is None else np.ascontiguousarray(times, dtype=np.int64)
        if u.shape != i.shape or (t is not None and t.shape != u.shape) or u.ndim != 1:
            raise RecsysError(Status.E_INVALID, "users, items and times must be 1-D and of one length")
        return cls._make(ctx, lib.recsys_dataset_from_arrays, u.size, u.ctypes.data_as(_P_I64),
                         i.ctypes.data_as(_P_I64), None if t is None else t.ctypes.data_as(_P_I64),
                         _opts_ptr(opts))

    def stat(self, which: int) -> float:
        v = ctypes.c_double()
        _check(lib.recsys_dataset_stat(self._ptr(), int(which), ctypes.byref(v)))
        return v.value

    @property
    def n_users(self) -> int:
        return int(self.stat(Stat.USERS))

    @property
    def n_items(self) -> int:
        return int(self.stat(Stat.ITEMS))

    @property
    def n_events(self) -> int:
        return int(self.stat(Stat.EVENTS))

    def user_items(self, user: int) -> np.ndarray:
        """The user's items (dense ids) as a read-only int32 view into the
        dataset, without a copy; the view keeps the dataset alive."""
        items = _P_I32()
        n = ctypes.c_size_t()
        _check(lib.recsys_dataset_user_items(self._ptr(), user, ctypes.byref(items), None,
                                             ctypes.byref(n)))
        return _readonly_view(items, n.value, ctypes.c_int32, np.int32, self._h)

    def user_times(self, user: int) -> Optional[np.ndarray]:
        items, times = _P_I32(), _P_I64()
        n = ctypes.c_size_t()
        _check(lib.recsys_dataset_user_items(self._ptr(), user, ctypes.byref(items),
                                             ctypes.byref(times), ctypes.byref(n)))
        if not times:
            return None
        return _readonly_view(times, n.value, ctypes.c_int64, np.int64, self._h)

    def user_name(self, user: int) -> str:
        v = ctypes.c_char_p()
        _check(lib.recsys_dataset_user_name(self._ptr(), user, ctypes.byref(v)))
        return v.value.decode()

    def item_name(self, item: int) -> str:
        v = ctypes.c_char_p()
        _check(lib.recsys_dataset_item_name(self._ptr(), item, ctypes.byref(v)))
        return v.value.decode()

    def item_id(self, name: str) -> int:
        v = ctypes.c_int32()
        _check(lib.recsys_dataset_item_id(self._ptr(), _enc(name), ctypes.byref(v)))
        return v.value

    def user_id(self, name: str) -> int:
        v = ctypes.c_int64()
        _check(lib.recsys_dataset_user_id(self._ptr(), _enc(name), ctypes.byref(v)))
        return v.value


class Model(_Object):
    """A SASRec / HSTU model (recsys_model), reference-counted in C. Keeps no
    ctx. Read-only (shareable between threads) unless a Trainer trains it."""

    def __init__(self, ctx: Context, opts: Optional[Options], ds: Dataset):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_model_new(ctx._ptr(), _opts_ptr(opts), ds._ptr(), ctypes.byref(out)))
        self._adopt(out, lib.recsys_model_free)

    @classmethod
    def load(cls, ctx: Context, path: str) -> "Model":
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_model_load(ctx._ptr(), _enc(path), ctypes.byref(out)))
        self = cls.__new__(cls)
        self._adopt(out, lib.recsys_model_free)
        return self

    def save(self, ctx: Context, path: str) -> None:
        ctx.check(lib.recsys_model_save(ctx._ptr(), self._ptr(), _enc(path)))

    @property
    def n_params(self) -> int:
        v = ctypes.c_int64()
        _check(lib.recsys_model_n_params(self._ptr(), ctypes.byref(v)))
        return v.value

    @property
    def n_items(self) -> int:
        v = ctypes.c_int32()
        _check(lib.recsys_model_n_items(self._ptr(), ctypes.byref(v)))
        return v.value

    def get(self, key: str) -> str:
        v = ctypes.c_char_p()
        _check(lib.recsys_model_get(self._ptr(), _enc(key), ctypes.byref(v)))
        return v.value.decode()

    def info(self) -> "ModelInfo":
        """Type, sizes, flags and data fingerprint (recsys_model_info_get)."""
        return _model_info(self)

    def item_id(self, external_id: Any) -> int:
        """Dense id (1..n_items) of an external item id, without the dataset
        (checkpoints store the ids); RecsysError E_NOT_FOUND when unknown."""
        v = ctypes.c_int32()
        _check(lib.recsys_model_item_id(self._ptr(), _enc(external_id), ctypes.byref(v)))
        return v.value

    def item_ids(self, external_ids: Iterable[Any]) -> np.ndarray:
        """item_id of each external id, as an int32 array."""
        return np.array([self.item_id(e) for e in external_ids], dtype=np.int32)

    def item_name(self, item: int) -> str:
        """External id of a dense item id."""
        v = ctypes.c_char_p()
        _check(lib.recsys_model_item_name(self._ptr(), int(item), ctypes.byref(v)))
        return v.value.decode()

    def _table(self, fn) -> np.ndarray:
        p, rows, dim = _P_F32(), ctypes.c_int32(), ctypes.c_int()
        _check(fn(self._ptr(), ctypes.byref(p), ctypes.byref(rows), ctypes.byref(dim)))
        n = rows.value * dim.value
        return _readonly_view(p, n, ctypes.c_float, np.float32, self._h).reshape(rows.value, dim.value)

    def item_table(self) -> np.ndarray:
        """The item embedding table as a read-only (n_items+1, dim) float32
        view, without a copy (row 0: padding). The view keeps the model alive;
        it shows the weights as they are (training changes them)."""
        return self._table(lib.recsys_model_item_table)

    def item_vectors(self) -> np.ndarray:
        """The vectors scores are dot products with (the item table, or its
        L2-normalised copy for l2norm models): a read-only (n_items+1, dim)
        float32 view that keeps the model alive. score = user_vector @ row."""
        return self._table(lib.recsys_model_item_vectors)

    # --- tensors by name (import / export of weights trained elsewhere) ---
    @classmethod
    def new_blank(cls, ctx: Context, opts: Optional[Options], n_items: int) -> "Model":
        """A model with the config of opts for n_items items (external ids
        "1".."n_items"), initialised as a new model is; no dataset needed."""
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_model_new_blank(ctx._ptr(), _opts_ptr(opts), int(n_items), ctypes.byref(out)))
        self = cls.__new__(cls)
        self._adopt(out, lib.recsys_model_free)
        return self

    @property
    def tensor_count(self) -> int:
        n = ctypes.c_int()
        _check(lib.recsys_model_tensor_count(self._ptr(), ctypes.byref(n)))
        return n.value

    def tensor_info(self, i: int) -> "TensorInfo":
        """Name and shape of tensor i (0 <= i < tensor_count)."""
        name, ndim = ctypes.c_char_p(), ctypes.c_int()
        shape = (ctypes.c_int64 * _decls.DEFINES["RECSYS_TENSOR_MAX_DIMS"])()
        numel = ctypes.c_int64()
        _check(lib.recsys_model_tensor_info(self._ptr(), int(i), ctypes.byref(name), ctypes.byref(ndim),
                                            shape, ctypes.byref(numel)))
        return TensorInfo(name.value.decode(), tuple(shape[:ndim.value]), numel.value)

    def tensors_info(self) -> List["TensorInfo"]:
        return [self.tensor_info(i) for i in range(self.tensor_count)]

    def _tensor(self, name: str) -> "TensorInfo":
        for t in self.tensors_info():
            if t.name == name:
                return t
        raise RecsysError(Status.E_NOT_FOUND, f"model has no tensor {name!r}")

    def get_tensor(self, ctx: Context, name: str, out: Optional[np.ndarray] = None) -> np.ndarray:
        """A copy of tensor `name` as a float32 array of its shape (written
        into `out`, float32 C-contiguous with numel elements, when given)."""
        t = self._tensor(name)
        if out is None:
            out = np.empty(t.shape, np.float32)
        elif (out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable
              or out.size != t.numel):
            raise RecsysError(Status.E_INVALID, f"out must be a writable C-contiguous float32 array of {t.numel} values")
        ctx.check(lib.recsys_model_get_tensor(ctx._ptr(), self._ptr(), _enc(name),
                                              out.ctypes.data_as(_P_F32), out.size))
        return out

    def set_tensor(self, ctx: Context, name: str, data: Any) -> None:
        """Overwrite tensor `name` (numel float32 values, any shape; used in
        place when already float32 C-contiguous). Only on a model nothing else
        holds (no Session, Trainer, Adapter): E_INVALID otherwise."""
        a = np.ascontiguousarray(data, dtype=np.float32)
        ctx.check(lib.recsys_model_set_tensor(ctx._ptr(), self._ptr(), _enc(name),
                                              a.ctypes.data_as(_P_F32), a.size))

    def state_dict(self, ctx: Context) -> Dict[str, np.ndarray]:
        """Every tensor by name (copies)."""
        return {t.name: self.get_tensor(ctx, t.name) for t in self.tensors_info()}

    def load_state_dict(self, ctx: Context, tensors: Mapping[str, Any]) -> None:
        for name, v in tensors.items():
            self.set_tensor(ctx, name, v)

    def set_item_ids(self, ctx: Context, ids: Sequence[Any]) -> None:
        """External ids of items 1..n_items (ids[0] is item 1; unique, non-empty)."""
        enc = [_enc(i) for i in ids]
        arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
        ctx.check(lib.recsys_model_set_item_ids(ctx._ptr(), self._ptr(), arr, len(enc)))



@dataclass(frozen=True)
class ModelInfo:
    """What a model says about itself (recsys_model_info)."""
    type: "ModelType"
    n_items: int          # dense item ids 1..n_items
    max_len: int
    dim: int              # user and item vectors have dim floats
    blocks: int
    heads: int
    time_bias: bool       # pass times in requests
    l2norm: bool          # scores are cosine
    has_item_ids: bool    # external item ids stored (else "1".."n_items")
    data_has_time: bool
    n_params: int
    n_users: int          # -1 when unknown
    data_fingerprint: int  # 0 when unknown
    positions_from_start: bool = False  # model.positions = start: user states cache keys/values


def _model_info(model: "Model") -> ModelInfo:
    c = TYPES["recsys_model_info"]()
    c.struct_size = ctypes.sizeof(c)
    _check(lib.recsys_model_info_get(model._ptr(), ctypes.byref(c)))
    try:
        t = ModelType(c.type)
    except ValueError:
        t = c.type
    return ModelInfo(t, c.n_items, c.max_len, c.dim, c.blocks, c.heads, bool(c.time_bias),
                     bool(c.l2norm), bool(c.has_item_ids), bool(c.data_has_time), c.n_params,
                     c.n_users, c.data_fingerprint, bool(c.positions_from_start))


@dataclass(frozen=True)
class Progress:
    """A copy of recsys_progress, passed to progress callbacks."""
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    elapsed_seconds: float
    samples_per_second: float


class Trainer(_Object):
    """Trains a model on a dataset's training split (recsys_trainer). Keeps its
    Context, Model and Dataset alive (the C trainer borrows the dataset)."""

    def __init__(self, ctx: Context, model: Model, ds: Dataset, opts: Optional[Options] = None):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_trainer_new(ctx._ptr(), model._ptr(), ds._ptr(), _opts_ptr(opts),
                                         ctypes.byref(out)))
        self._adopt(out, lib.recsys_trainer_free, (ctx._h, model._h, ds._h))
        self.ctx, self.model, self.dataset = ctx, model, ds
        self._progress_cb = None
        self._cb_error: Optional[BaseException] = None

    def _check(self, st):
        err, self._cb_error = self._cb_error, None
        if err is not None:
            raise err
        _check(st, self._h.keep[0].ptr)

    def set_progress(self, fn: Optional[Callable[[Progress], Optional[bool]]]) -> None:
        """Call fn(Progress) between batches, on the thread running run_epoch.
        A true return value stops training (run_epoch raises RecsysError with
        Status.E_ABORTED); an exception in fn stops it and is re-raised."""
        if fn is None:
            cb = ctypes.cast(None, TYPES["recsys_progress_fn"])
        else:
            def tramp(_user, p):
                try:
                    c = p.contents
                    return 1 if fn(Progress(c.epoch, c.epochs, c.step, c.steps, c.loss,
                                            c.elapsed_seconds, c.samples_per_second)) else 0
                except BaseException as e:  # never unwind into C
                    self._cb_error = e
                    return 1
            cb = TYPES["recsys_progress_fn"](tramp)
        _check(lib.recsys_trainer_set_progress(self._ptr(), cb, None))
        self._progress_cb = cb

    def run_epoch(self) -> float:
        """One epoch over the training split; returns its mean loss."""
        loss = ctypes.c_double()
        self._check(lib.recsys_trainer_run_epoch(self._ptr(), ctypes.byref(loss)))
        return loss.value

    @property
    def epoch(self) -> int:
        return lib.recsys_trainer_epoch(self._ptr())

    @property
    def eval_due(self) -> bool:
        """Whether trainer.eval_every says to evaluate after the epochs run so far."""
        return bool(lib.recsys_trainer_eval_due(self._ptr()))

    def save_checkpoint(self, path: str) -> None:
        self._check(lib.recsys_trainer_save_checkpoint(self._ptr(), _enc(path)))

    def resume(self, path: str) -> None:
        self._check(lib.recsys_trainer_resume(self._ptr(), _enc(path)))


def _i32(a, what: str) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.int32)
    if a.ndim != 1:
        raise RecsysError(Status.E_INVALID, f"{what} must be 1-D")
    return a


class Request:
    """One scoring request (recsys_request): a history of dense item ids
    (oldest first) and optionally its timestamps, the top-k size, items never
    to recommend (exclude_history, exclude ids, exclude_mask of n_items+1
    bytes) and candidates to rank instead of the whole catalogue. Arrays of
    the right dtype and layout (int32 / int64 / uint8, C-contiguous) are
    used in place. adapter: an Adapter of the session's model to score with
    (None: the base model; a BANK is mixed per request by its gate). Note: exclude_history defaults to
    False here, as in C."""
    __slots__ = ("history", "times", "k", "exclude_history", "exclude", "exclude_mask",
                 "candidates", "adapter")

    def __init__(self, history: Sequence[int] = (), *, times: Optional[Sequence[int]] = None,
                 k: int = 10, exclude_history: bool = False,
                 exclude: Optional[Sequence[int]] = None,
                 exclude_mask: Optional[Sequence[int]] = None,
                 candidates: Optional[Sequence[int]] = None,
                 adapter: Optional["Adapter"] = None):
        self.history = _i32(history, "history")
        self.times = None if times is None else np.ascontiguousarray(times, dtype=np.int64)
        if self.times is not None and self.times.shape != self.history.shape:
            raise RecsysError(Status.E_INVALID, "times must have one entry per history item")
        self.k = int(k)
        self.exclude_history = bool(exclude_history)
        self.exclude = None if exclude is None else _i32(exclude, "exclude")
        self.exclude_mask = (None if exclude_mask is None else
                             np.ascontiguousarray(exclude_mask).astype(np.uint8, copy=False))
        self.candidates = None if candidates is None else _i32(candidates, "candidates")
        self.adapter = adapter

    def _fill(self, c, n_items: int):
        """Fill the C struct c (pointers borrowed from this object's arrays)."""
        if self.exclude_mask is not None and self.exclude_mask.shape != (n_items + 1,):
            raise RecsysError(Status.E_INVALID, f"exclude_mask must have n_items+1 = {n_items + 1} entries")
        c.struct_size = ctypes.sizeof(c)
        c.history = self.history.ctypes.data_as(_P_I32) if self.history.size else None
        c.n_history = self.history.size
        c.times = self.times.ctypes.data_as(_P_I64) if self.times is not None else None
        c.k = self.k
        c.exclude_history = int(self.exclude_history)
        c.exclude = self.exclude.ctypes.data_as(_P_I32) if self.exclude is not None else None
        c.n_exclude = 0 if self.exclude is None else self.exclude.size
        c.exclude_mask = (self.exclude_mask.ctypes.data_as(_P_U8)
                          if self.exclude_mask is not None else None)
        c.candidates = self.candidates.ctypes.data_as(_P_I32) if self.candidates is not None else None
        c.n_candidates = 0 if self.candidates is None else self.candidates.size
        c.adapter = self.adapter._ptr() if self.adapter is not None else None
        return c

    def _c(self, n_items: int):
        return self._fill(TYPES["recsys_request"](), n_items)


@dataclass(frozen=True)
class TensorInfo:
    """A model tensor: name, shape and float count (recsys_model_tensor_info)."""
    name: str
    shape: Tuple[int, ...]
    numel: int


class UserState(_Object):
    """A user's recent events for incremental serving (recsys_user_state):
    append events one at a time and score with Session.topk_state(state,
    k=...) (or Session.topk_request(state.request(k=...))); the scores equal
    those of a request carrying the whole history. With a model trained with
    model.positions = start, topk_state encodes only the events appended
    since its last call (keys and values cached in the state) until the
    window is full. Keeps its model alive. Not thread-safe."""

    def __init__(self, model: Model):
        out = ctypes.c_void_p()
        _check(lib.recsys_user_state_new(model._ptr(), ctypes.byref(out)))
        self._adopt(out, lib.recsys_user_state_free, (model._h,))
        self.model = model

    def append(self, item: int, time: int = 0) -> None:
        """Append one event (item 1..n_items; times non-decreasing, 0 when unused)."""
        _check(lib.recsys_user_state_append(self._ptr(), int(item), int(time)))

    def extend(self, items: Sequence[int], times: Optional[Sequence[int]] = None) -> None:
        for j, it in enumerate(items):
            self.append(it, 0 if times is None else times[j])

    def clear(self) -> None:
        _check(lib.recsys_user_state_clear(self._ptr()))

    @property
    def nbytes(self) -> int:
        v = ctypes.c_size_t()
        _check(lib.recsys_user_state_bytes(self._ptr(), ctypes.byref(v)))
        return v.value

    def window(self, copy: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The window's items (int32) and times (int64, or None). copy=False
        gives read-only views of the state's buffers, without a copy: they keep
        the state alive but change with the next append / clear."""
        c = TYPES["recsys_request"]()
        c.struct_size = ctypes.sizeof(c)
        _check(lib.recsys_user_state_request(self._ptr(), ctypes.byref(c)))
        n = c.n_history
        if not n:
            return np.empty(0, np.int32), None
        h = _readonly_view(c.history, n, ctypes.c_int32, np.int32, self._h)
        t = _readonly_view(c.times, n, ctypes.c_int64, np.int64, self._h) if c.times else None
        if copy:
            h, t = h.copy(), (None if t is None else t.copy())
        return h, t

    def request(self, copy: bool = True, **kw) -> Request:
        """A Request on the window plus Request keywords (k, exclude_history,
        exclude, ...). copy=False uses the state's buffers in place (use the
        request before the next append)."""
        h, t = self.window(copy)
        return Request(h, times=t, **kw)


class Adapter(_Object):
    """A per-user / shared LoRA adapter or a bank (recsys_adapter). Keeps its
    Context (errors) and its Model alive (the C adapter holds a model
    reference). Read-only while scoring (shareable); set_params needs
    exclusive use."""

    def __init__(self, ctx: Context, model: Model, opts: Optional[Options] = None,
                 kind: int = AdapterKind.USER):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_adapter_new(ctx._ptr(), model._ptr(), _opts_ptr(opts), int(kind),
                                         ctypes.byref(out)))
        self._init(out, ctx, model)

    @classmethod
    def _wrap(cls, out, ctx, model) -> "Adapter":
        self = cls.__new__(cls)
        self._init(out, ctx, model)
        return self

    def _init(self, out, ctx, model):
        self._adopt(out, lib.recsys_adapter_free, (ctx._h, model._h))
        self.ctx, self.model = ctx, model

    def _check(self, st):
        _check(st, self._h.keep[0].ptr)

    def info(self) -> Tuple[Any, int, int]:
        """(kind, rank, n_params)."""
        kind, rank, n = ctypes.c_int(), ctypes.c_int(), ctypes.c_int64()
        self._check(lib.recsys_adapter_info(self._ptr(), ctypes.byref(kind), ctypes.byref(rank),
                                            ctypes.byref(n)))
        try:
            k = AdapterKind(kind.value)
        except ValueError:
            k = kind.value
        return k, rank.value, n.value

    @property
    def kind(self):
        return self.info()[0]

    @property
    def rank(self) -> int:
        return self.info()[1]

    @property
    def n_params(self) -> int:
        return self.info()[2]

    def get_params(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """A float32 copy of the n_params parameters (into `out` when given)."""
        n = self.n_params
        if out is None:
            out = np.empty(n, np.float32)
        elif (out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable
              or out.size != n):
            raise RecsysError(Status.E_INVALID, f"out must be a writable C-contiguous float32 array of {n} values")
        self._check(lib.recsys_adapter_get_params(self._ptr(), out.ctypes.data_as(_P_F32), out.size))
        return out

    def set_params(self, params: Any) -> None:
        """Overwrite the parameters (n_params finite floats; float32
        C-contiguous arrays are used in place)."""
        a = np.ascontiguousarray(params, dtype=np.float32)
        self._check(lib.recsys_adapter_set_params(self._ptr(), a.ctypes.data_as(_P_F32), a.size))

    def to_bytes(self) -> bytes:
        """The serialised adapter (recsys_adapter_to_buffer, CRC-checked)."""
        buf, n = ctypes.c_void_p(), ctypes.c_size_t()
        self._check(lib.recsys_adapter_to_buffer(self._ptr(), ctypes.byref(buf), ctypes.byref(n)))
        try:
            return ctypes.string_at(buf, n.value)
        finally:
            lib.recsys_free(buf)

    @classmethod
    def from_bytes(cls, ctx: Context, model: Model, data: bytes) -> "Adapter":
        """An adapter for model from to_bytes output (E_FORMAT when damaged,
        E_INVALID when written for another model)."""
        data = bytes(data)
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_adapter_from_buffer(ctx._ptr(), model._ptr(), data, len(data),
                                                 ctypes.byref(out)))
        return cls._wrap(out, ctx, model)

    @classmethod
    def merge(cls, ctx: Context, adapters: Sequence["Adapter"],
              weights: Optional[Sequence[float]] = None,
              opts: Optional[Options] = None) -> "Adapter":
        """A new USER adapter merging USER/SHARED adapters of one shape
        (adapter.merge = linear | ties); weights default to 1/n each."""
        adapters = list(adapters)
        n = len(adapters)
        if n == 0:
            raise RecsysError(Status.E_INVALID, "merge needs at least one adapter")
        w = np.ascontiguousarray(np.full(n, 1.0 / n) if weights is None else weights, dtype=np.float32)
        if w.shape != (n,):
            raise RecsysError(Status.E_INVALID, "one weight per adapter")
        ptrs = (ctypes.c_void_p * n)(*[a._ptr() for a in adapters])
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_adapter_merge(ctx._ptr(), ptrs, w.ctypes.data_as(_P_F32), n,
                                           _opts_ptr(opts), ctypes.byref(out)))
        return cls._wrap(out, ctx, adapters[0].model)

    def fold(self) -> Model:
        """A new Model: this adapter's model with the adapter folded in (not for banks)."""
        out = ctypes.c_void_p()
        self._check(lib.recsys_adapter_fold(self._ptr(), ctypes.byref(out)))
        m = Model.__new__(Model)
        m._adopt(out, lib.recsys_model_free)
        return m

    def train(self, ds: Dataset, user: int = -1, opts: Optional[Options] = None) -> float:
        """Train this adapter on ds with its model frozen (SHARED / BANK on
        every user: user=-1; USER on one user's history); returns the mean
        loss of the last epoch (or of all steps for a user)."""
        loss = ctypes.c_double()
        self._check(lib.recsys_adapter_train(self._ptr(), ds._ptr(), int(user), _opts_ptr(opts),
                                             ctypes.byref(loss)))
        return loss.value

    def train_sequence(self, items, times=None, opts: Optional[Options] = None) -> float:
        """Train this USER adapter further on one explicit history of the
        model's dense item ids (times: as many timestamps, or None); nothing
        is held out. Returns the mean loss (the lifelong update)."""
        n = len(items)
        it = (ctypes.c_int32 * n)(*items)
        tm = None if times is None else (ctypes.c_int64 * n)(*times)
        if tm is not None and len(times) != n:
            raise ValueError("times must have one entry per item")
        loss = ctypes.c_double()
        self._check(lib.recsys_adapter_train_sequence(self._ptr(), it, tm, n, _opts_ptr(opts),
                                                      ctypes.byref(loss)))
        return loss.value


@dataclass(frozen=True)
class StoreStats:
    """recsys_adapter_store_stats counters."""
    n_users: int
    cached: int
    cache_bytes: int
    hits: int
    misses: int


class AdapterStore(_Object):
    """A file of per-user USER adapters (recsys_adapter_store), opened by mmap
    with an LRU cache (adapter.cache_mb). Keeps its Context and Model alive
    (the C store holds a model reference and writes errors to the ctx).
    get/put/pin may be called from several threads."""

    def __init__(self, ctx: Context, model: Model, path: str, writable: bool = False,
                 opts: Optional[Options] = None):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_adapter_store_open(ctx._ptr(), model._ptr(), _enc(path),
                                                int(bool(writable)), _opts_ptr(opts),
                                                ctypes.byref(out)))
        self._init(out, ctx, model)

    def _init(self, out, ctx, model):
        self._adopt(out, lib.recsys_adapter_store_close, (ctx._h, model._h))
        self.ctx, self.model = ctx, model

    @staticmethod
    def create(ctx: Context, model: Model, path: str, n_users: int,
               opts: Optional[Options] = None) -> None:
        """Create an empty store for users 0..n_users-1 shaped by opts."""
        ctx.check(lib.recsys_adapter_store_create(ctx._ptr(), model._ptr(), _opts_ptr(opts),
                                                  _enc(path), int(n_users)))

    @classmethod
    def from_bytes(cls, ctx: Context, model: Model, data: bytes,
                   opts: Optional[Options] = None) -> "AdapterStore":
        """A read-only store from the bytes of a store file (copied by C)."""
        data = bytes(data)
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_adapter_store_open_buffer(ctx._ptr(), model._ptr(), data, len(data),
                                                       _opts_ptr(opts), ctypes.byref(out)))
        self = cls.__new__(cls)
        self._init(out, ctx, model)
        return self

    def _check(self, st):
        _check(st, self._h.keep[0].ptr)

    def get(self, user: int) -> Adapter:
        """user's adapter (E_NOT_FOUND when none, E_FORMAT when damaged)."""
        out = ctypes.c_void_p()
        self._check(lib.recsys_adapter_store_get(self._ptr(), int(user), ctypes.byref(out)))
        return Adapter._wrap(out, self.ctx, self.model)

    def put(self, user: int, adapter: Adapter, sync: bool = False) -> None:
        self._check(lib.recsys_adapter_store_put(self._ptr(), int(user), adapter._ptr(),
                                                 int(bool(sync))))

    def pin(self, user: int, pin: bool = True) -> None:
        self._check(lib.recsys_adapter_store_pin(self._ptr(), int(user), int(bool(pin))))

    def stats(self) -> StoreStats:
        v = [ctypes.c_int64() for _ in range(5)]
        self._check(lib.recsys_adapter_store_stats(self._ptr(), *[ctypes.byref(x) for x in v]))
        return StoreStats(*[x.value for x in v])


class Session(_Object):
    """Scoring scratch for one serving thread (recsys_session). Keeps its
    Context and Model alive. Several sessions (each with its own Context) may
    score one Model from several threads at once."""

    def __init__(self, ctx: Context, model: Model):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_session_new(ctx._ptr(), model._ptr(), ctypes.byref(out)))
        self._adopt(out, lib.recsys_session_free, (ctx._h, model._h))
        self.ctx, self.model = ctx, model
        self.n_items = model.n_items

    def _check(self, st):
        _check(st, self._h.keep[0].ptr)

    def score(self, history: Sequence[int], out: Optional[np.ndarray] = None) -> np.ndarray:
        """Scores of every item (index = dense id; index 0 is -inf) after history.
        Writes into `out` (float32, C-contiguous, n_items+1) without a copy when given."""
        h = np.ascontiguousarray(history, dtype=np.int32)
        if out is None:
            out = np.empty(self.n_items + 1, np.float32)
        elif out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
            raise RecsysError(Status.E_INVALID, "out must be a writable C-contiguous float32 array")
        self._check(lib.recsys_session_score(self._ptr(), h.ctypes.data_as(_P_I32), h.size,
                                             out.ctypes.data_as(_P_F32), out.size))
        return out

    def topk(self, history: Sequence[int], k: int = 10,
             exclude_history: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """The k best items after history, best first: (int32 ids, float32 scores)."""
        h = np.ascontiguousarray(history, dtype=np.int32)
        items = np.empty(k, np.int32)
        scores = np.empty(k, np.float32)
        self._check(lib.recsys_session_topk(self._ptr(), h.ctypes.data_as(_P_I32), h.size, k,
                                            int(bool(exclude_history)), items.ctypes.data_as(_P_I32),
                                            scores.ctypes.data_as(_P_F32)))
        return items, scores

    def _request(self, req, kw) -> Request:
        if isinstance(req, Request):
            if kw:
                raise TypeError("pass either a Request or keyword arguments, not both")
            return req
        return Request(req, **kw)

    def score_request(self, req: Any, *, out: Optional[np.ndarray] = None, **kw) -> np.ndarray:
        """Scores of a Request (or a history plus Request keywords: times,
        exclude_history, exclude, exclude_mask, candidates). Without
        candidates: n_items+1 floats (index = dense id, excluded items and 0
        are -inf); with candidates, one per candidate in their order. Writes
        into `out` (float32, C-contiguous) without a copy when given."""
        r = self._request(req, kw)
        n = self.n_items + 1 if r.candidates is None else r.candidates.size
        if out is None:
            out = np.empty(n, np.float32)
        elif out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
            raise RecsysError(Status.E_INVALID, "out must be a writable C-contiguous float32 array")
        c = r._c(self.n_items)
        self._check(lib.recsys_session_score_request(self._ptr(), ctypes.byref(c),
                                                     out.ctypes.data_as(_P_F32), out.size))
        return out

    def topk_request(self, req: Any, **kw) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k of a Request (or a history plus Request keywords, k included),
        best first (ties: lower id first): (int32 ids, float32 scores), shorter
        than k only when fewer items are eligible."""
        r = self._request(req, kw)
        k = max(r.k, 0)
        items = np.empty(k, np.int32)
        scores = np.empty(k, np.float32)
        n = ctypes.c_size_t()
        c = r._c(self.n_items)
        self._check(lib.recsys_session_topk_request(self._ptr(), ctypes.byref(c),
                                                    items.ctypes.data_as(_P_I32),
                                                    scores.ctypes.data_as(_P_F32), ctypes.byref(n)))
        return items[:n.value], scores[:n.value]

    def _state_request(self, kw) -> Request:
        if "history" in kw or "times" in kw:
            raise TypeError("the user state supplies history and times")
        return Request((), **kw)

    def topk_state(self, state: "UserState", **kw) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k after a UserState's window (recsys_session_topk_state), with
        Request keywords (k, exclude_history, exclude, ...) but no history."""
        r = self._state_request(kw)
        k = max(r.k, 0)
        items = np.empty(k, np.int32)
        scores = np.empty(k, np.float32)
        n = ctypes.c_size_t()
        c = r._c(self.n_items)
        self._check(lib.recsys_session_topk_state(self._ptr(), state._ptr(), ctypes.byref(c),
                                                  items.ctypes.data_as(_P_I32),
                                                  scores.ctypes.data_as(_P_F32), ctypes.byref(n)))
        return items[:n.value], scores[:n.value]

    def score_state(self, state: "UserState", **kw) -> np.ndarray:
        """Scores after a UserState's window (recsys_session_score_state), as
        score_request."""
        r = self._state_request(kw)
        out = np.empty(self.n_items + 1 if r.candidates is None else r.candidates.size, np.float32)
        c = r._c(self.n_items)
        self._check(lib.recsys_session_score_state(self._ptr(), state._ptr(), ctypes.byref(c),
                                                   out.ctypes.data_as(_P_F32), out.size))
        return out

    def topk_batch(self, histories: Any, k: int = 10, exclude_history: bool = True, *,
                   offsets: Optional[Sequence[int]] = None, times: Any = None,
                   return_counts: bool = False):
        """Top-k for many requests in one C call (recsys_session_topk_batch:
        histories encoded in batches, one matrix product per batch, over the
        ctx's threads; results equal single topk_request calls).

        histories: a list of histories (sequences of dense ids) or of Request
        objects (their own k and exclusions; the width is the largest k), or,
        with offsets (n+1 ascending ints), one flat int32 array where request
        i is histories[offsets[i]:offsets[i+1]] (used in place, no copies).
        times: like histories (a list, or a flat int64 array with offsets).
        Returns (items (n, width) int32, scores (n, width) float32) and with
        return_counts also the int64 counts written per row; unused slots hold
        item 0 and score -inf."""
        n_items = self.n_items
        keep: List[Any] = []
        if offsets is not None:
            off = np.ascontiguousarray(offsets, dtype=np.int64)
            flat = _i32(histories, "histories")
            if off.ndim != 1 or off.size < 1 or off[0] < 0 or off[-1] > flat.size or np.any(np.diff(off) < 0):
                raise RecsysError(Status.E_INVALID, "offsets must ascend within the flat histories")
            tflat = None if times is None else np.ascontiguousarray(times, dtype=np.int64)
            if tflat is not None and tflat.shape != flat.shape:
                raise RecsysError(Status.E_INVALID, "times must match the flat histories")
            n = off.size - 1
            reqs = (TYPES["recsys_request"] * n)()
            base = flat.ctypes.data
            tbase = None if tflat is None else tflat.ctypes.data
            for i in range(n):
                c = reqs[i]
                c.struct_size = ctypes.sizeof(c)
                a, b = int(off[i]), int(off[i + 1])
                c.history = ctypes.cast(base + 4 * a, _P_I32)
                c.n_history = b - a
                c.times = None if tbase is None else ctypes.cast(tbase + 8 * a, _P_I64)
                c.k = int(k)
                c.exclude_history = int(bool(exclude_history))
            keep += [flat, tflat]
            width = int(k)
        else:
            hs = list(histories)
            ts = [None] * len(hs) if times is None else list(times)
            if len(ts) != len(hs):
                raise RecsysError(Status.E_INVALID, "times must have one entry per history")
            rs_ = [h if isinstance(h, Request) else
                   Request(h, times=t, k=k, exclude_history=exclude_history) for h, t in zip(hs, ts)]
            n = len(rs_)
            reqs = (TYPES["recsys_request"] * n)()
            for i, r in enumerate(rs_):
                r._fill(reqs[i], n_items)
            keep += rs_
            width = max((r.k for r in rs_), default=int(k))
        width = max(width, 0)
        items = np.zeros((n, width), np.int32)
        scores = np.full((n, width), -np.inf, np.float32)
        counts = np.zeros(n, np.uintp)
        if n:
            ptrs = (ctypes.POINTER(TYPES["recsys_request"]) * n)(
                *[ctypes.pointer(reqs[i]) for i in range(n)])
            self._check(lib.recsys_session_topk_batch(
                self._ptr(), ptrs, n, width, items.ctypes.data_as(_P_I32),
                scores.ctypes.data_as(_P_F32), counts.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t))))
        del keep
        counts = counts.astype(np.int64)
        return (items, scores, counts) if return_counts else (items, scores)

    def user_vector(self, req: Any, **kw) -> np.ndarray:
        """The user vector of a Request's history (dim float32):
        score(item) = user_vector @ model.item_vectors()[item]."""
        r = self._request(req, kw)
        if not hasattr(self, "_dim"):
            self._dim = self.model.info().dim
        out = np.empty(self._dim, np.float32)
        c = r._c(self.n_items)
        self._check(lib.recsys_session_user_vector(self._ptr(), ctypes.byref(c),
                                                   out.ctypes.data_as(_P_F32), out.size))
        return out


def _metrics(ctx: Context, fn, *args) -> Dict[str, float]:
    out = ctypes.c_void_p()
    ctx.check(fn(ctx._ptr(), *args, ctypes.byref(out)))
    try:
        return {lib.recsys_metrics_name(out, i).decode(): lib.recsys_metrics_value(out, i)
                for i in range(lib.recsys_metrics_count(out))}
    finally:
        lib.recsys_metrics_free(out)


def evaluate(ctx: Context, model: Model, ds: Dataset, opts: Optional[Options] = None) -> Dict[str, float]:
    """HR@K, NDCG@K, MRR and "users" of model on ds (eval.* options)."""
    return _metrics(ctx, lib.recsys_evaluate, model._ptr(), ds._ptr(), _opts_ptr(opts))


def evaluate_adapters(ctx: Context, model: Model, ds: Dataset, opts: Optional[Options] = None, *,
                      adapter: Optional["Adapter"] = None, store: Optional["AdapterStore"] = None,
                      user_ranks: bool = False):
    """evaluate() with adapters: each user scored with their adapter in
    `store` when it holds one, else with `adapter`, else the base model.
    user_ranks=True also returns a float64 array (one per dataset user) of
    0-based target ranks (NaN: not evaluated): (metrics, ranks)."""
    ranks = np.empty(ds.n_users, np.float64) if user_ranks else None
    m = _metrics(ctx, lib.recsys_evaluate_adapters, model._ptr(),
                 adapter._ptr() if adapter is not None else None,
                 store._ptr() if store is not None else None, ds._ptr(), _opts_ptr(opts),
                 ranks.ctypes.data_as(_P_F64) if ranks is not None else None)
    return (m, ranks) if user_ranks else m


def evaluate_popularity(ctx: Context, ds: Dataset, opts: Optional[Options] = None) -> Dict[str, float]:
    """The popularity baseline under the same protocol."""
    return _metrics(ctx, lib.recsys_evaluate_popularity, ds._ptr(), _opts_ptr(opts))


class ApEn(_Object):
    """Approximate Entropy estimator (apen.m, apen.r, apen.window). Keeps its Context."""

    def __init__(self, ctx: Context, opts: Optional[Options] = None):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_apen_new(ctx._ptr(), _opts_ptr(opts), ctypes.byref(out)))
        self._adopt(out, lib.recsys_apen_free, (ctx._h,))
        self.ctx = ctx

    def _check(self, st):
        _check(st, self._h.keep[0].ptr)

    def sequence(self, seq: Sequence[int]) -> float:
        s = np.ascontiguousarray(seq, dtype=np.int32)
        v = ctypes.c_double()
        self._check(lib.recsys_apen_sequence(self._ptr(), s.ctypes.data_as(_P_I32), s.size, ctypes.byref(v)))
        return v.value

    def numeric(self, seq: Sequence[float]) -> float:
        s = np.ascontiguousarray(seq, dtype=np.float64)
        v = ctypes.c_double()
        self._check(lib.recsys_apen_numeric(self._ptr(), s.ctypes.data_as(_P_F64), s.size, ctypes.byref(v)))
        return v.value

    def dataset(self, ds: Dataset) -> Tuple[float, np.ndarray, int]:
        """(mean ApEn, per-user values (NaN where too short), users averaged)."""
        per_user = np.empty(ds.n_users, np.float64)
        v, used = ctypes.c_double(), ctypes.c_int64()
        self._check(lib.recsys_apen_dataset(self._ptr(), ds._ptr(), ctypes.byref(v),
                                            per_user.ctypes.data_as(_P_F64), per_user.size,
                                            ctypes.byref(used)))
        return v.value, per_user, used.value


class PerfLaw(_Object):
    """Performance Law fitter (recsys_perflaw). Keeps its Context."""
    N_PARAMS = _decls.DEFINES["RECSYS_PERFLAW_N_PARAMS"]

    def __init__(self, ctx: Context):
        out = ctypes.c_void_p()
        ctx.check(lib.recsys_perflaw_new(ctx._ptr(), ctypes.byref(out)))
        self._adopt(out, lib.recsys_perflaw_free, (ctx._h,))
        self.ctx = ctx

    def _check(self, st):
        _check(st, self._h.keep[0].ptr)

    def add(self, layers: float, hidden: float, data: float, metric: float) -> None:
        self._check(lib.recsys_perflaw_add(self._ptr(), layers, hidden, data, metric))

    def fit(self) -> None:
        self._check(lib.recsys_perflaw_fit(self._ptr()))

    def params(self) -> Tuple[np.ndarray, np.ndarray, float]:
        """(parameters, standard errors, R²)."""
        p = np.empty(self.N_PARAMS, np.float64)
        e = np.empty(self.N_PARAMS, np.float64)
        r2 = ctypes.c_double()
        self._check(lib.recsys_perflaw_params(self._ptr(), p.ctypes.data_as(_P_F64),
                                              e.ctypes.data_as(_P_F64), ctypes.byref(r2)))
        return p, e, r2.value

    def predict(self, layers: float, hidden: float, data: float) -> float:
        v = ctypes.c_double()
        self._check(lib.recsys_perflaw_predict(self._ptr(), layers, hidden, data, ctypes.byref(v)))
        return v.value

    def best_size(self, data: float, layers: Sequence[float],
                  hidden: Sequence[float]) -> Tuple[float, float, float]:
        """(layers, hidden, predicted metric) of the best candidate."""
        l = np.ascontiguousarray(layers, dtype=np.float64)
        h = np.ascontiguousarray(hidden, dtype=np.float64)
        bl, bh, bm = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        self._check(lib.recsys_perflaw_best_size(self._ptr(), data, l.ctypes.data_as(_P_F64), l.size,
                                                 h.ctypes.data_as(_P_F64), h.size, ctypes.byref(bl),
                                                 ctypes.byref(bh), ctypes.byref(bm)))
        return bl.value, bh.value, bm.value
