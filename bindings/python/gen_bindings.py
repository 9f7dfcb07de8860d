#!/usr/bin/python3
"""Generate the Python declarations of librecsys from the C header.

    /usr/bin/python3 bindings/python/gen_bindings.py            # rewrite
    /usr/bin/python3 bindings/python/gen_bindings.py --check    # fail if stale

Reads include/librecsys/recsys.h and writes, next to this script:
  librecsys/_decls.py     every function (return and argument C types),
                          callback typedef, struct, enum and integer #define,
                          from which librecsys/_capi.py builds the ctypes
                          declarations (argtypes/restype for all functions);
  librecsys/recsys_cdef.h the same declarations in a form cffi's cdef() parses
                          (no preprocessor conditionals, no extern "C", no
                          expression or string macros), for ABI mode;
  ../rust/librecsys-sys/src/generated.rs  the raw Rust declarations
                          (extern "C" block, constants, #[repr(C)] types).
When the API grows, rerun this script; the test suite runs --check, so a
header change without regenerated declarations fails the tests.

The parser knows just the C subset the header uses: opaque struct typedefs,
`typedef int recsys_status;`, enums with pinned values, plain structs,
function-pointer typedefs and `RECSYS_API <type> <name>(<params>);`. Anything
else between declarations is an error, so nothing is silently left out.
"""
import os
import pprint
import re
import sys

RUST_KEYWORDS = ('type', 'ref', 'fn', 'in', 'match', 'mod', 'move', 'use', 'impl', 'loop', 'self', 'crate', 'where')
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_HEADER = os.path.join(HERE, "..", "..", "include", "librecsys", "recsys.h")
DECLS = os.path.join(HERE, "librecsys", "_decls.py")
CDEF = os.path.join(HERE, "librecsys", "recsys_cdef.h")
RUST_SYS = os.path.join(HERE, "..", "rust", "librecsys-sys", "src", "generated.rs")


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _norm_type(t):
    """Canonical spelling of a C type: 'const char *', 'recsys_ctx **'."""
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\s*\*\s*", " *", t)
    t = t.replace("* *", "**").replace("* *", "**")
    return t.strip()


def _split_param(p):
    """'const int32_t *history' -> ('const int32_t *', 'history')."""
    p = p.strip()
    if p == "void":
        return None
    m = re.match(r"^(.*?[\s\*])(\w+)$", p)
    if not m:
        raise ValueError(f"cannot parse parameter {p!r}")
    return _norm_type(m.group(1)), m.group(2)


def parse_header(path):
    raw = open(path, encoding="utf-8").read()
    text = _strip_comments(raw).replace("\\\n", " ")
    defines = {}
    body = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#"):
            # Object-like integer macros, literal or arithmetic on earlier
            # ones (RECSYS_VERSION_NUMBER); strings and function-like macros
            # have no place in a cdef.
            m = re.match(r"#\s*define\s+(RECSYS_\w+)\s+([-+*() \w]+)$", s)
            if m and m.group(1) != "RECSYS_API":
                expr = m.group(2)
                if re.fullmatch(r"[-+*() \d]*(\b(RECSYS_\w+)\b[-+*() \d]*)*", expr) and all(
                        n in defines for n in re.findall(r"RECSYS_\w+", expr)):
                    defines[m.group(1)] = int(eval(expr, {"__builtins__": {}}, dict(defines)))
            continue
        body.append(line)
    code = "\n".join(body)
    code = code.replace('extern "C" {', "").replace("RECSYS_API", "")
    stmts = [s.strip() for s in re.split(r";", code)]
    out = {"defines": defines, "opaque": [], "typedefs": {}, "enums": {},
           "structs": {}, "callbacks": {}, "functions": {}}
    pending = ""
    for st in stmts:
        st = re.sub(r"\s+", " ", (pending + " " + st).strip())
        pending = ""
        st = st.strip("} ").strip() if st.startswith("}") else st
        if not st:
            continue
        if st.count("{") > st.count("}"):
            pending = st + ";"   # a struct body: keep collecting
            continue
        m = re.match(r"^typedef struct (\w+) (\w+)$", st)
        if m:
            out["opaque"].append(m.group(2))
            continue
        m = re.match(r"^typedef struct (\w+) \{(.*)\} (\w+)$", st)
        if m:
            fields = []
            for f in m.group(2).split(";"):
                if f.strip():
                    fields.append(tuple(reversed(_split_param(f))))
            out["structs"][m.group(3)] = fields
            continue
        m = re.match(r"^enum (\w+) \{(.*)\}$", st)
        if m:
            vals = {}
            for item in m.group(2).split(","):
                if item.strip():
                    k, v = item.split("=")
                    vals[k.strip()] = int(v.strip())
            out["enums"][m.group(1)] = vals
            continue
        m = re.match(r"^typedef ([\w ]+) (\w+)$", st)
        if m:
            out["typedefs"][m.group(2)] = _norm_type(m.group(1))
            continue
        m = re.match(r"^typedef (.+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)$", st)
        if m:
            params = [p for p in (_split_param(x) for x in m.group(3).split(",")) if p]
            out["callbacks"][m.group(2)] = (_norm_type(m.group(1)), params)
            continue
        m = re.match(r"^(.+?[\s\*])(recsys_\w+)\s*\((.*)\)$", st)
        if m:
            params = [p for p in (_split_param(x) for x in m.group(3).split(",")) if p]
            out["functions"][m.group(2)] = (_norm_type(m.group(1)), params)
            continue
        raise ValueError(f"{path}: unrecognised declaration: {st[:120]!r}")
    # The opaque typedef of a struct also defined in full is not opaque.
    out["opaque"] = [o for o in out["opaque"] if o not in out["structs"]]
    return out


def render_decls(api):
    head = ('"""Generated by bindings/python/gen_bindings.py from include/librecsys/recsys.h:\n'
            'do not edit. Rerun the script when the header changes."""\n\n')
    parts = [head]
    for key, name in [("defines", "DEFINES"), ("enums", "ENUMS"), ("opaque", "OPAQUE"),
                      ("typedefs", "TYPEDEFS"), ("structs", "STRUCTS"),
                      ("callbacks", "CALLBACKS"), ("functions", "FUNCTIONS")]:
        parts.append(f"{name} = " + pprint.pformat(api[key], width=100, sort_dicts=False) + "\n\n")
    return "".join(parts).rstrip() + "\n"


def _c_param(t, n):
    return f"{t}{n}" if t.endswith("*") else f"{t} {n}"


def render_cdef(api):
    lines = ["/* Generated by bindings/python/gen_bindings.py from include/librecsys/recsys.h:",
             " * do not edit. The declarations of librecsys in the C subset that cffi's",
             " * cdef() parses (ABI mode: ffi.dlopen). */", ""]
    for name, value in api["defines"].items():
        lines.append(f"#define {name} {value}")
    lines.append("")
    for name, vals in api["enums"].items():
        lines.append(f"enum {name} {{")
        lines += [f"    {k} = {v}," for k, v in vals.items()]
        lines.append("};")
    for name, t in api["typedefs"].items():
        lines.append(f"typedef {t} {name};")
    for name in api["opaque"]:
        lines.append(f"typedef struct {name} {name};")
    # Structs declared first, callbacks next, struct bodies last: callbacks
    # take structs (recsys_progress_fn) and structs hold callbacks
    # (recsys_collective).
    for name in api["structs"]:
        lines.append(f"typedef struct {name} {name};")
    for name, (ret, params) in api["callbacks"].items():
        ps = ", ".join(_c_param(t, n) for t, n in params) or "void"
        lines.append(f"typedef {ret} (*{name})({ps});")
    for name, fields in api["structs"].items():
        lines.append(f"struct {name} {{")
        lines += [f"    {_c_param(t, n)};" for n, t in fields]
        lines.append("};")
    lines.append("")
    for name, (ret, params) in api["functions"].items():
        ps = ", ".join(_c_param(t, n) for t, n in params) or "void"
        lines.append(f"{_c_param(ret, name)}({ps});")
    return "\n".join(lines) + "\n"


_RUST_SCALARS = {
    "void": "c_void", "int": "c_int", "unsigned": "c_uint", "double": "f64", "float": "f32",
    "char": "c_char", "size_t": "usize", "int8_t": "i8", "uint8_t": "u8", "int16_t": "i16",
    "uint16_t": "u16", "int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
}


def _rust_type(t, api):
    const = t.startswith("const ")
    base = t.replace("const ", "").replace("*", "").strip()
    stars = t.count("*")
    if base in _RUST_SCALARS:
        r = _RUST_SCALARS[base]
    elif base in api["opaque"] or base in api["structs"] or base in api["typedefs"] or base in api["callbacks"]:
        r = base
    else:
        raise ValueError(f"no Rust mapping for {t!r}")
    # Star i points at the base (i == 0) or at pointer i-1: "*const" when that
    # pointee is const ("const T *const *" -> *const *const T).
    star_const = [bool(c) for c in re.findall(r"\*\s*(const)?", t)]
    for i in range(stars):
        pointee_const = const if i == 0 else star_const[i - 1]
        r = ("*const " if pointee_const else "*mut ") + r
    return r


def render_rust(api):
    L = ["// Generated by bindings/python/gen_bindings.py from include/librecsys/recsys.h:",
         "// do not edit. Rerun the script when the header changes.", "",
         "use std::os::raw::{c_char, c_int, c_uint, c_void};", ""]
    for name, t in api["typedefs"].items():
        L.append(f"pub type {name} = {_rust_type(t, api)};")
    for name, value in api["defines"].items():
        L.append(f"pub const {name}: c_int = {value};")
    for name, vals in api["enums"].items():
        L.append(f"// enum {name}")
        for k, v in vals.items():
            L.append(f"pub const {k}: recsys_status = {v};")
    for name in api["opaque"]:
        L += ["#[repr(C)]", f"pub struct {name} {{", "    _private: [u8; 0],", "}"]
    for name, fields in api["structs"].items():
        L += ["#[repr(C)]", "#[derive(Debug, Clone, Copy)]", f"pub struct {name} {{"]
        L += [f"    pub {('r#' + n) if n in RUST_KEYWORDS else n}: {_rust_type(t, api)}," for n, t in fields]
        L.append("}")
    for name, (ret, params) in api["callbacks"].items():
        ps = ", ".join(f"{n}: {_rust_type(t, api)}" for t, n in params)
        r = "" if ret == "void" else f" -> {_rust_type(ret, api)}"
        L.append(f'pub type {name} = Option<unsafe extern "C" fn({ps}){r}>;')
    L += ["", "extern \"C\" {"]
    for name, (ret, params) in api["functions"].items():
        ps = ", ".join(f"{('r#' + n) if n in RUST_KEYWORDS else n}: {_rust_type(t, api)}"
                       for t, n in params)
        r = "" if ret == "void" else f" -> {_rust_type(ret, api)}"
        L.append(f"    pub fn {name}({ps}){r};")
    L.append("}")
    return "\n".join(L) + "\n"


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if not a.startswith("--")]
    header = args[0] if args else DEFAULT_HEADER
    api = parse_header(header)
    stale = []
    for path, text in [(DECLS, render_decls(api)), (CDEF, render_cdef(api)),
                       (RUST_SYS, render_rust(api))]:
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            if check:
                stale.append(path)
            else:
                with open(path, "w") as f:
                    f.write(text)
    if stale:
        print("stale (run bindings/python/gen_bindings.py):", *stale, file=sys.stderr)
        return 1
    print(f"{len(api['functions'])} functions, {len(api['callbacks'])} callbacks, "
          f"{len(api['structs'])} structs, {sum(map(len, api['enums'].values()))} enum values, "
          f"{len(api['defines'])} constants")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
