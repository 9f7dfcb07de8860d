"""The raw C API through ctypes: library lookup, version check and the
declarations of every public function, built from _decls.py (generated from
include/librecsys/recsys.h by gen_bindings.py, so none is left undeclared).

Lookup order for the shared library:
  1. the environment variable LIBRECSYS_PATH (a file path);
  2. next to the package (a librecsys.so* copied into the package or its
     parent directory) and the build tree of a source checkout
     (<repo>/build/lib, or any <repo>/build*/lib);
  3. the soname librecsys.so.0 through the dynamic loader.
"""
import ctypes
import glob
import os
import sys

from . import _decls

SONAME = {"darwin": "librecsys.0.dylib", "win32": "recsys-0.dll"}.get(sys.platform,
                                                                      "librecsys.so.0")
HEADER_VERSION = _decls.DEFINES["RECSYS_VERSION_NUMBER"]

_SCALARS = {
    "void": None, "int": ctypes.c_int, "unsigned": ctypes.c_uint, "double": ctypes.c_double,
    "float": ctypes.c_float, "char": ctypes.c_char, "size_t": ctypes.c_size_t,
    "int8_t": ctypes.c_int8, "uint8_t": ctypes.c_uint8, "int16_t": ctypes.c_int16,
    "uint16_t": ctypes.c_uint16, "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
}


def candidates():
    """Paths tried in order (see the module docstring)."""
    out = []
    env = os.environ.get("LIBRECSYS_PATH")
    if env:
        return [env]
    pkg = os.path.dirname(os.path.abspath(__file__))
    for d in (pkg, os.path.dirname(pkg)):
        out += sorted(glob.glob(os.path.join(d, "librecsys.so*")))
    # A source checkout: <repo>/bindings/python/librecsys -> <repo>/build*/lib
    repo = os.path.abspath(os.path.join(pkg, "..", "..", ".."))
    if os.path.exists(os.path.join(repo, "include", "librecsys", "recsys.h")):
        for b in ["build"] + sorted(os.path.basename(p) for p in glob.glob(os.path.join(repo, "build?*"))):
            p = os.path.join(repo, b, "lib", "librecsys.so")
            if os.path.exists(p):
                out.append(p)
    out.append(SONAME)
    return out


def _ctype(t, types):
    """ctypes type for a canonical C type string from _decls."""
    t = t.replace("const ", "").strip()
    stars = t.count("*")
    base = t.replace("*", "").strip()
    if base == "char" and stars >= 1:
        inner, stars = ctypes.c_char_p, stars - 1
    elif base == "void" and stars >= 1:
        inner, stars = ctypes.c_void_p, stars - 1
    elif base in _decls.OPAQUE and stars >= 1:
        inner, stars = ctypes.c_void_p, stars - 1
    elif base in types:
        inner = types[base]
    elif base in _SCALARS:
        inner = _SCALARS[base]
    else:
        raise TypeError(f"librecsys: no ctypes mapping for C type {t!r}")
    for _ in range(stars):
        inner = ctypes.POINTER(inner)
    return inner


def _build_types():
    types = {name: _ctype(t, {}) for name, t in _decls.TYPEDEFS.items()}
    # Structs and callbacks may refer to each other (recsys_progress_fn takes
    # a struct; recsys_collective holds callbacks): resolve until done.
    todo = [("s", n, v) for n, v in _decls.STRUCTS.items()] + \
           [("c", n, v) for n, v in _decls.CALLBACKS.items()]
    while todo:
        left = []
        for kind, name, v in todo:
            try:
                if kind == "s":
                    fields = [(f, _ctype(t, types)) for f, t in v]
                    types[name] = type(name, (ctypes.Structure,), {"_fields_": fields})
                else:
                    ret, params = v
                    types[name] = ctypes.CFUNCTYPE(_ctype(ret, types),
                                                   *[_ctype(t, types) for t, _ in params])
            except TypeError:
                left.append((kind, name, v))
        if len(left) == len(todo):
            _ctype(left[0][2][0][1] if left[0][0] == "s" else left[0][2][0], types)  # raises
        todo = left
    return types


TYPES = _build_types()


class LibraryNotFound(ImportError):
    pass


def _declare(lib):
    missing = []
    for name, (ret, params) in _decls.FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = _ctype(ret, TYPES)
        fn.argtypes = [_ctype(t, TYPES) for t, _ in params]
    if missing:
        raise LibraryNotFound(f"{lib._name}: missing symbols {', '.join(missing)} "
                              "(a library older than these bindings?)")


def load(path=None):
    """Load and declare the library; check that its version serves this header."""
    tried = []
    lib = None
    for cand in ([path] if path else candidates()):
        try:
            lib = ctypes.CDLL(cand)
            break
        except OSError as e:
            tried.append(f"{cand}: {e}")
    if lib is None:
        raise LibraryNotFound("librecsys not found; set LIBRECSYS_PATH. Tried:\n  " +
                              "\n  ".join(tried))
    if not hasattr(lib, "recsys_check_version"):
        raise LibraryNotFound(f"{lib._name} is older than these bindings (no recsys_check_version)")
    _declare(lib)
    if lib.recsys_check_version(HEADER_VERSION) != 0:
        raise LibraryNotFound(lib.recsys_last_errmsg().decode())
    return lib


lib = load()
path = lib._name
