"""Models through PyTorch and back: a demo model trained here is exported
(`recsys export --to safetensors`), loaded into the PyTorch fixture model
class (tools/gen_sasrec_fixture.py's SASRecFixture, tools/gen_hstu_fixture.py's
HSTUFixture), changed a little there, scored in PyTorch, written back as
safetensors from its state_dict, imported (`recsys import --from safetensors
--config YAML`), and `recsys recommend`'s scores must match PyTorch's within
1e-5 for every item. Also: the pmixer/SASRec.pytorch naming round trip, and
malformed files refused with a message. Exit 77 (skip) without torch.

Usage: test_pytorch_roundtrip.py RECSYS SOURCE_ROOT"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: PyTorch (python3-torch) is not installed")
    sys.exit(77)

RECSYS, ROOT = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(ROOT, "tools"))
from gen_hstu_fixture import HSTUFixture  # noqa: E402
from gen_sasrec_fixture import SASRecFixture  # noqa: E402

TOL = 1e-5
tmp = tempfile.mkdtemp()
passed = failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok {name}")
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {name}: {e!r}")


def run(args, stdin=None, ok=True):
    p = subprocess.run([RECSYS] + args, input=stdin, capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, (args, p.stderr)
    return p


# ------------------------------------------------------------ safetensors I/O

DT = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "F16": (torch.float16, 2),
      "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt, _ = DT[e["dtype"]]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=dt) if end > b else torch.zeros(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, meta=None, dtypes=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, t in tensors.items():
        dt = (dtypes or {}).get(name, "F32")
        b = t.detach().to(DT[dt][0]).contiguous().numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---------------------------------------------------------------- helpers

TINY = ["--set", "data.synthetic_users=300", "--set", "data.synthetic_items=80",
        "--set", "model.max_len=20", "--set", "model.dim=16", "--set", "trainer.threads=1",
        "--set", "trainer.epochs=1"]
CONFIG = os.path.join(ROOT, "examples", "configs", "demo.yaml")

# Histories by external id (the demo model's ids are "1".."80"), with
# times: short, exactly max_len, longer than max_len.
HISTORIES = [(["3", "17", "42"], [100, 160, 4000]),
             ([str(1 + (7 * i) % 80) for i in range(20)], [1000 + 37 * i * i for i in range(20)]),
             ([str(1 + (11 * i) % 80) for i in range(33)], [5000 + 900 * i for i in range(33)]),
             (["5"], [77])]


def encode(name_to_id, hist, times, L):
    """Left-padded [1, L] rows of dense ids and times (the last L events)."""
    ids = [name_to_id[h] for h in hist][-L:]
    ts = times[-L:]
    seq = torch.zeros(1, L, dtype=torch.long)
    tt = torch.zeros(1, L, dtype=torch.long)
    seq[0, L - len(ids):] = torch.tensor(ids)
    tt[0, L - len(ts):] = torch.tensor(ts)
    return seq, tt


def recommend_all(model, n_items, with_times):
    lines = []
    for hist, times in HISTORIES:
        req = {"history": hist, "k": n_items}
        if with_times:
            req["times"] = times
        lines.append(json.dumps(req))
    p = run(["recommend", "--model", model, "--batch", "3"], "\n".join(lines) + "\n")
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == len(HISTORIES), p.stdout
    return [dict(zip(o["items"], o["scores"])) for o in out]


def compare(torch_scores, c_scores, id_names):
    worst = 0.0
    for row, got in zip(torch_scores, c_scores):
        assert len(got) == len(id_names), (len(got), len(id_names))
        for i, name in enumerate(id_names, start=1):
            worst = max(worst, abs(float(row[i]) - got[name]))
    assert worst <= TOL, f"max |torch - recsys| = {worst:.3g} > {TOL}"
    return worst


def yaml_of(meta):
    """A --config YAML from the model.* metadata keys."""
    lines = ["model:"]
    for k, v in meta.items():
        if k.startswith("model."):
            lines.append(f"  {k[6:]}: {v}")
    return "\n".join(lines) + "\n"


def roundtrip(kind, extra):
    model = os.path.join(tmp, f"{kind}.rsm")
    st = os.path.join(tmp, f"{kind}.safetensors")
    run(["train", "--config", CONFIG, "--out", model] + TINY + extra)
    run(["export", "--to", "safetensors", "--model", model, "--out", st])
    tensors, meta = read_safetensors(st)
    ids = meta["recsys.item_ids"].split("\n")
    name_to_id = {n: i + 1 for i, n in enumerate(ids)}
    L = int(meta["model.max_len"])
    if meta["model.type"] == "sasrec":
        m = SASRecFixture(n_items=len(ids), max_len=L, dim=int(meta["model.dim"]),
                          blocks=int(meta["model.blocks"]), heads=int(meta["model.heads"]),
                          ffn_dim=int(meta["model.ffn_dim"]), norm=meta["model.norm"],
                          positions=meta.get("model.positions", "end"))
    else:
        cfg = {k: int(meta["model." + k]) for k in ("dim", "max_len", "blocks", "heads", "dqk", "dv")}
        cfg["n_items"] = len(ids)
        cfg["time_bias"] = 1 if meta["model.time_bias"] == "on" else 0
        m = HSTUFixture(cfg)
    m.load_state_dict({k: v.double() for k, v in tensors.items()}, strict=True)
    with_times = meta["model.type"] == "hstu"

    def scores_of(mod):
        rows = []
        with torch.no_grad():
            for hist, times in HISTORIES:
                seq, tt = encode(name_to_id, hist, times, L)
                rows.append((mod.scores(seq, tt) if with_times else mod.scores(seq))[0])
        return rows

    # 1. the exported weights give recsys's scores in PyTorch
    compare(scores_of(m), recommend_all(model, len(ids), with_times), ids)
    # 2. change the weights in PyTorch (as fine-tuning would), store float32
    #    values, write the state_dict back, import, compare.
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in m.state_dict(keep_vars=True).items():
            p += 0.01 * torch.randn(p.shape, generator=g, dtype=p.dtype)
            if name in ("item_emb", "pos_emb"):
                p[0] = 0
            p.copy_(p.float().double())
    expect = scores_of(m)
    st2 = os.path.join(tmp, f"{kind}_torch.safetensors")
    yaml = os.path.join(tmp, f"{kind}.yaml")
    open(yaml, "w").write(yaml_of(meta))
    # the config comes from --config (the metadata holds only the item
    # ids); one tensor stored as F64
    sd = {k: v.detach() for k, v in m.state_dict().items()}
    write_safetensors(st2, sd, {"recsys.item_ids": meta["recsys.item_ids"]},
                      dtypes={"item_emb": "F64"})
    model2 = os.path.join(tmp, f"{kind}_torch.rsm")
    run(["import", "--from", "safetensors", st2, "--config", yaml, "--out", model2])
    worst = compare(expect, recommend_all(model2, len(ids), with_times), ids)
    print(f"  {kind}: max |torch - recsys| after the round trip = {worst:.3g}")


check("sasrec round trip through PyTorch", lambda: roundtrip("sasrec", []))
check("sasrec (pre norm) round trip through PyTorch",
      lambda: roundtrip("sasrec_pre", ["--set", "model.norm=pre"]))
check("sasrec (positions from the start) round trip through PyTorch",
      lambda: roundtrip("sasrec_start", ["--set", "model.positions=start"]))
check("hstu (time bias) round trip through PyTorch",
      lambda: roundtrip("hstu", ["--set", "model.type=hstu", "--set", "model.time_bias=on",
                                 "--set", "trainer.loss=sampled_softmax"]))


def pmixer_names():
    model = os.path.join(tmp, "sasrec.rsm")
    st = os.path.join(tmp, "pm.safetensors")
    run(["export", "--to", "safetensors", "--model", model, "--out", st, "--names", "pmixer"])
    tensors, meta = read_safetensors(st)
    assert "attention_layers.1.in_proj_weight" in tensors and "last_layernorm.bias" in tensors
    assert list(tensors["forward_layers.0.conv1.weight"].shape) == [16, 16, 1]
    assert list(tensors["pos_emb.weight"].shape) == [21, 16]
    # the older pmixer layout: pos_emb [maxlen, d] indexed from 0
    tensors["pos_emb.weight"] = tensors["pos_emb.weight"][1:].clone()
    st_old = os.path.join(tmp, "pm_old.safetensors")
    write_safetensors(st_old, tensors, {"recsys.item_ids": meta["recsys.item_ids"]})
    yaml = os.path.join(tmp, "pm.yaml")
    open(yaml, "w").write(yaml_of(meta))
    back = os.path.join(tmp, "pm.rsm")
    run(["import", "--from", "safetensors", st_old, "--config", yaml, "--out", back])
    a = recommend_all(model, 80, False)
    b = recommend_all(back, 80, False)
    assert a == b
    # the current pmixer layout: pos_emb sized for maxlen 200 (rows past ours unused)
    tensors["pos_emb.weight"] = torch.cat([torch.zeros(1, 16), tensors["pos_emb.weight"],
                                           torch.randn(181, 16)])
    write_safetensors(st_old, tensors, {"recsys.item_ids": meta["recsys.item_ids"]})
    run(["import", "--from", "safetensors", st_old, "--config", yaml, "--out", back])
    assert recommend_all(back, 80, False) == a


check("pmixer/SASRec.pytorch names", pmixer_names)


class PmixerStyle(torch.nn.Module):
    """A SASRec laid out as pmixer/SASRec.pytorch's module tree (so its
    state_dict keys are that repository's), written here from the
    equations docs/SERVING.md lists for its current code: norm_first (our
    "pre") or not (our "post"), causal mask only (padded keys not masked),
    Conv1d(kernel 1) FFN with ReLU, LayerNorm eps 1e-8."""

    def __init__(self, n_items, max_len, d, blocks, heads, norm_first):
        super().__init__()
        self.norm_first = norm_first
        self.item_emb = torch.nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = torch.nn.Embedding(max_len + 1, d, padding_idx=0)
        ln = lambda: torch.nn.LayerNorm(d, eps=1e-8)  # noqa: E731
        self.attention_layernorms = torch.nn.ModuleList([ln() for _ in range(blocks)])
        self.attention_layers = torch.nn.ModuleList(
            [torch.nn.MultiheadAttention(d, heads) for _ in range(blocks)])
        self.forward_layernorms = torch.nn.ModuleList([ln() for _ in range(blocks)])
        ffn = torch.nn.Module
        self.forward_layers = torch.nn.ModuleList()
        for _ in range(blocks):
            f = ffn()
            f.conv1 = torch.nn.Conv1d(d, d, kernel_size=1)
            f.conv2 = torch.nn.Conv1d(d, d, kernel_size=1)
            self.forward_layers.append(f)
        self.last_layernorm = ln()

    def ffn(self, i, x):  # x [B, L, d]
        f = self.forward_layers[i]
        y = f.conv2(torch.relu(f.conv1(x.transpose(-1, -2))))
        return y.transpose(-1, -2)

    def scores(self, seq):
        B, L = seq.shape
        x = self.item_emb(seq) * self.item_emb.embedding_dim ** 0.5
        pos = torch.arange(1, L + 1).unsqueeze(0).expand(B, -1) * (seq != 0)
        x = x + self.pos_emb(pos)
        mask = ~torch.tril(torch.ones(L, L, dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            x = x.transpose(0, 1)
            if self.norm_first:
                q = self.attention_layernorms[i](x)
                a, _ = self.attention_layers[i](q, q, q, attn_mask=mask)
                x = (x + a).transpose(0, 1)
                x = x + self.ffn(i, self.forward_layernorms[i](x))
            else:
                a, _ = self.attention_layers[i](x, x, x, attn_mask=mask)
                x = self.attention_layernorms[i](x + a).transpose(0, 1)
                x = self.forward_layernorms[i](x + self.ffn(i, x))
        f = self.last_layernorm(x)[:, -1]
        return f @ self.item_emb.weight.T


def pmixer_semantics(norm, norm_first):
    """Our model exported with pmixer names, loaded into the pmixer-style
    module: same scores for histories of at least max_len items."""
    model = os.path.join(tmp, f"sem_{norm}.rsm")
    run(["train", "--config", CONFIG, "--out", model, "--set", f"model.norm={norm}"] + TINY)
    st = os.path.join(tmp, f"sem_{norm}.safetensors")
    run(["export", "--to", "safetensors", "--model", model, "--out", st, "--names", "pmixer"])
    tensors, meta = read_safetensors(st)
    ids = meta["recsys.item_ids"].split("\n")
    name_to_id = {n: i + 1 for i, n in enumerate(ids)}
    m = PmixerStyle(len(ids), 20, 16, 2, 1, norm_first).double().eval()
    m.load_state_dict({k: v.double() for k, v in tensors.items()}, strict=True)
    got = recommend_all(model, len(ids), False)
    worst = 0.0
    with torch.no_grad():
        for (hist, times), row in zip(HISTORIES, got):
            if len(hist) < 20:
                continue  # padding is handled differently (docs/SERVING.md)
            seq, _ = encode(name_to_id, hist, times, 20)
            ref = m.scores(seq)[0]
            worst = max(worst, max(abs(float(ref[i]) - row[n]) for i, n in enumerate(ids, 1)))
    assert worst <= TOL, f"max |pmixer-style - recsys| = {worst:.3g}"
    print(f"  {norm}: max |pmixer-style - recsys| = {worst:.3g}")


check("pmixer semantics, norm_first (pre)", lambda: pmixer_semantics("pre", True))
check("pmixer semantics, default (post)", lambda: pmixer_semantics("post", False))


def malformed():
    st = os.path.join(tmp, "sasrec.safetensors")
    raw = open(st, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    cases = {
        "short": raw[:5],
        "huge header": struct.pack("<Q", 1 << 40) + raw[8:],
        "truncated data": raw[:-4],
        "not json": struct.pack("<Q", 4) + b"{{{{",
    }
    h = dict(header)
    h["attn.w_in"] = dict(h["attn.w_in"], shape=[2, 48, 15])
    hb = json.dumps(h).encode()
    cases["shape vs offsets"] = struct.pack("<Q", len(hb)) + hb + raw[8 + n:]
    h = dict(header)
    h["item_emb"] = dict(h["item_emb"], dtype="I64")
    hb = json.dumps(h).encode()
    cases["dtype"] = struct.pack("<Q", len(hb)) + hb + raw[8 + n:]
    for name, data in cases.items():
        path = os.path.join(tmp, "bad.safetensors")
        open(path, "wb").write(data)
        p = run(["import", "--from", "safetensors", path, "--out", os.path.join(tmp, "bad.rsm")],
                ok=False)
        assert p.returncode == 1 and "recsys import" in p.stderr, (name, p.returncode, p.stderr)
        assert not os.path.exists(os.path.join(tmp, "bad.rsm")), name
    # a shape that does not fit the config
    path = os.path.join(tmp, "bad.safetensors")
    tensors, meta = read_safetensors(st)
    meta["model.dim"] = "8"
    write_safetensors(path, tensors, meta)
    p = run(["import", "--from", "safetensors", path, "--out", os.path.join(tmp, "bad.rsm")], ok=False)
    assert p.returncode == 1 and "shape" in p.stderr, p.stderr


check("malformed files are refused", malformed)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
