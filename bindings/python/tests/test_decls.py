"""Every public C function is declared, from declarations generated from the
header; the generated files are current; the cffi cdef parses."""
import os
import shutil
import subprocess
import sys

import pytest

import librecsys as rs
from librecsys import _decls

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "gen_bindings.py")
HEADER = os.path.join(HERE, "..", "..", "..", "include", "librecsys", "recsys.h")


@pytest.mark.skipif(not os.path.exists(HEADER), reason="not in a source checkout")
def test_generated_files_match_header():
    r = subprocess.run([sys.executable, GEN, "--check", HEADER], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_function_declared():
    for name, (ret, params) in _decls.FUNCTIONS.items():
        fn = getattr(rs.lib, name)
        assert fn.argtypes is not None and len(fn.argtypes) == len(params), name
        if ret == "void":
            assert fn.restype is None, name
        else:
            assert fn.restype is not None and fn.restype is not int or ret == "int", name


def test_pointer_returns_are_not_truncated():
    # c_int would truncate a pointer: every pointer-returning function says so.
    for name, (ret, _) in _decls.FUNCTIONS.items():
        if "*" in ret:
            assert getattr(rs.lib, name).restype.__name__ in ("c_char_p", "c_void_p"), name


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
def test_every_exported_symbol_declared():
    out = subprocess.run(["nm", "-D", "--defined-only", rs._capi.path], capture_output=True,
                         text=True).stdout
    exported = {l.split()[2].split("@")[0] for l in out.splitlines()
                if len(l.split()) == 3 and l.split()[1] == "T"}
    assert exported == set(_decls.FUNCTIONS), exported ^ set(_decls.FUNCTIONS)


def test_constants_and_version():
    assert rs.Status.E_INVALID == -1 and rs.Status.OK == 0
    assert rs.lib.recsys_version_number() >= rs.HEADER_VERSION
    assert rs.version() == rs.lib.recsys_version_string().decode()
    assert rs.lib.recsys_check_version(rs.HEADER_VERSION + 10000) == rs.Status.E_UNSUPPORTED
    assert "major" in rs.lib.recsys_last_errmsg().decode()


def test_library_lookup_order(monkeypatch):
    monkeypatch.setenv("LIBRECSYS_PATH", "/nonexistent/librecsys.so")
    assert rs._capi.candidates() == ["/nonexistent/librecsys.so"]
    with pytest.raises(ImportError, match="LIBRECSYS_PATH"):
        rs._capi.load()
    monkeypatch.delenv("LIBRECSYS_PATH")
    c = rs._capi.candidates()
    assert c[-1] == rs._capi.SONAME
