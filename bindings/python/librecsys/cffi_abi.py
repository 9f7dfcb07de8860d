"""cffi ABI-mode access to librecsys: `ffi.cdef()` of recsys_cdef.h (generated
from include/librecsys/recsys.h by gen_bindings.py) and `ffi.dlopen()` of the
same library the ctypes binding found. No compiler is needed.

    from librecsys.cffi_abi import ffi, lib, check
    ctx = ffi.new("recsys_ctx **")
    check(lib.recsys_ctx_new(ctx))
    ctx = ffi.gc(ctx[0], lib.recsys_ctx_free)

Errors: `check(status)` raises librecsys.RecsysError with the thread's last
error message (recsys_last_errmsg), which every failing call sets.
"""
import os

import cffi

from . import _capi

CDEF_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recsys_cdef.h")

ffi = cffi.FFI()
with open(CDEF_PATH) as _f:
    ffi.cdef(_f.read())
lib = ffi.dlopen(_capi.path)
if lib.recsys_check_version(lib.RECSYS_VERSION_NUMBER) != lib.RECSYS_OK:
    raise ImportError(ffi.string(lib.recsys_last_errmsg()).decode())


def errmsg(ctx=ffi.NULL) -> str:
    """The ctx's last error message (the thread's with no ctx), via the copy call."""
    n = lib.recsys_errmsg_copy(ctx, ffi.NULL, 0)
    buf = ffi.new("char[]", n + 1)
    lib.recsys_errmsg_copy(ctx, buf, n + 1)
    return ffi.string(buf).decode("utf-8", "replace")


def check(status: int, ctx=ffi.NULL) -> None:
    """Raise librecsys.RecsysError for a non-zero status."""
    if status != lib.RECSYS_OK:
        from . import RecsysError
        msg = errmsg() or (errmsg(ctx) if ctx != ffi.NULL else "")
        raise RecsysError(status, msg or ffi.string(lib.recsys_status_str(status)).decode())
