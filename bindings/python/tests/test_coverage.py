"""Every public C function is used by the safe layer or allow-listed with a
reason in coverage_allow.txt (tests/bindings/api_coverage.py does the check)."""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def test_every_function_wrapped():
    spec = importlib.util.spec_from_file_location(
        "api_coverage", os.path.join(ROOT, "tests", "bindings", "api_coverage.py"))
    cov = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cov)
    pkg = os.path.join(HERE, "..", "librecsys")
    text = "".join(open(os.path.join(pkg, f)).read() for f in ("__init__.py", "_capi.py"))
    header = open(os.path.join(ROOT, "include", "librecsys", "recsys.h")).read()
    fns, bad = cov.problems(header, cov.read_allow(os.path.join(HERE, "coverage_allow.txt")), text)
    assert len(fns) > 90
    assert not bad, "\n".join(bad)
