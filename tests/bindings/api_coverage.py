#!/usr/bin/env python3
"""Check that a binding's safe layer references every public C function.

    api_coverage.py HEADER ALLOWLIST SOURCE...

Lists the functions recsys.h declares (RECSYS_API ... recsys_x(...)) and
fails naming those that no SOURCE mentions (as a whole word) and that the
allow-list file does not name. The allow-list has one `function  reason`
per line (# comments); every entry must carry a reason and name a function
that exists and is really left out, so the list cannot go stale. Used by
the C++ suite (meson test cpp_api_coverage) and the Python suite; Rust and
Go do the same check in their own tests.
"""
import re
import sys


def header_functions(header_text):
    return re.findall(r"RECSYS_API[^;(]*?\b(recsys_\w+)\s*\(", header_text)


def read_allow(path):
    allow = {}
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise SystemExit(f"{path}:{n}: {parts[0]} needs a reason")
        allow[parts[0]] = parts[1]
    return allow


def problems(header_text, allow, sources_text):
    fns = header_functions(header_text)
    out = []
    for f in fns:
        used = re.search(r"\b" + re.escape(f) + r"\b", sources_text) is not None
        if not used and f not in allow:
            out.append(f"{f}: not wrapped (wrap it, or allow-list it with a reason)")
        if used and f in allow:
            out.append(f"{f}: allow-listed but wrapped (drop it from the allow-list)")
    for f in allow:
        if f not in fns:
            out.append(f"{f}: allow-listed but not in the header")
    return fns, out


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    header, allow_path, sources = argv[1], argv[2], argv[3:]
    text = "".join(open(s).read() for s in sources)
    fns, bad = problems(open(header).read(), read_allow(allow_path), text)
    for b in bad:
        print(b)
    print(f"{len(fns)} functions, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
