"""End-to-end checks of the recsys command: the JSON contracts of train,
eval, apen, sweep and perflaw, --set overrides, and clean errors."""
import json
import os
import subprocess
import sys
import tempfile

RECSYS = sys.argv[1]
ROOT = sys.argv[2]
TINY = ["--set", "data.synthetic_users=200", "--set", "data.synthetic_items=50",
        "--set", "data.synthetic_length=15", "--set", "model.max_len=10",
        "--set", "model.dim=8", "--set", "model.blocks=1", "--set", "trainer.threads=2"]
passed = failed = 0


def run(args, ok=True):
    p = subprocess.run([RECSYS] + args, capture_output=True, text=True, timeout=300)
    if ok and p.returncode != 0:
        raise AssertionError(f"{args} failed: {p.stderr}")
    if ok is False and p.returncode == 0:
        raise AssertionError(f"{args} should have failed")
    return p


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok {name}")
    except Exception as e:  # noqa: BLE001 - report every failure
        failed += 1
        print(f"FAIL {name}: {e}")


tmp = tempfile.mkdtemp()
model_path = os.path.join(tmp, "m.rsm")
config = os.path.join(ROOT, "examples", "configs", "demo.yaml")


def train():
    p = run(["train", "--config", config, "--out", model_path, "--set", "trainer.epochs=2",
             "--set", "trainer.eval_every=1"] + TINY)
    lines = json_lines(p.stdout)
    epochs = [l for l in lines if "epoch" in l and not l.get("final")]
    assert len(epochs) == 2, lines
    for e in epochs:
        for key in ("epoch", "loss", "epoch_seconds", "HR@10", "NDCG@10", "MRR"):
            assert key in e, (key, e)
    final = lines[-1]
    assert final["final"] and "popularity_HR@10" in final and final["users"] > 0
    assert os.path.getsize(model_path) > 0


def evaluate():
    for protocol in ("sampled", "full"):
        p = run(["eval", "--model", model_path, "--data", "synthetic", "--protocol", protocol,
                 "--split", "test", "--config", config] + TINY)
        last = json_lines(p.stdout)[-1]
        for key in ("HR@10", "NDCG@10", "MRR", "protocol", "users"):
            assert key in last, (key, last)
        assert last["protocol"] == protocol
        assert 0 <= last["HR@10"] <= 1 and last["users"] > 0


def errors():
    p = run(["train", "--config", config, "--set", "model.dimm=3"], ok=False)
    assert "model.dimm" in p.stderr, p.stderr
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("model:\n  dim: fifty\n")
    p = run(["train", "--config", bad], ok=False)
    assert "bad.yaml:2:" in p.stderr, p.stderr
    data = os.path.join(tmp, "bad.txt")
    with open(data, "w") as f:
        f.write("1 2 100\n1 3 x\n")
    p = run(["train", "--data", data], ok=False)
    assert "bad.txt:2" in p.stderr, p.stderr
    p = run(["eval", "--model", data, "--data", "synthetic"], ok=False)
    assert "recsys eval" in p.stderr
    p = run(["nonsense"], ok=False)


def apen():
    data = os.path.join(tmp, "seq.txt")
    with open(data, "w") as f:
        f.write("1 5\n1 6\n1 5\n1 6\n1 5\n1 6\n2 7\n2 8\n2 9\n2 7\n2 8\n")
    per_user = os.path.join(tmp, "per_user.tsv")
    p = run(["apen", "--data", data, "--m", "1", "--per-user", per_user])
    last = json_lines(p.stdout)[-1]
    for key in ("apen", "m", "r", "users", "events"):
        assert key in last, (key, last)
    assert last["users"] == 2 and last["events"] == 11 and last["m"] == 1
    assert len(open(per_user).read().splitlines()) == 2


def sweep_and_fit():
    runs = os.path.join(tmp, "runs.csv")
    run(["sweep", "--layers", "1,2", "--dims", "8,16", "--fractions", "0.5,1", "--out", runs,
         "--set", "trainer.epochs=1"] + TINY)
    rows = open(runs).read().splitlines()
    assert rows[0].startswith("run,layers,dim"), rows[0]
    assert len(rows) == 1 + 8, rows
    p = run(["perflaw", "fit", runs, "--metric", "NDCG@10"], ok=None)
    # 8 noisy runs may or may not determine 6 parameters; either way a clear outcome
    if p.returncode == 0:
        last = json_lines(p.stdout)[-1]
        assert "params" in last and "r2" in last
    else:
        assert "recsys perflaw" in p.stderr, p.stderr


def crc32c(data, crc=0):
    table = crc32c.table
    if table is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
            table.append(c)
        crc32c.table = table
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


crc32c.table = None


def reseal(b):
    """Recompute every section CRC and the END record of a checkpoint."""
    import struct
    off = 16
    while off + 16 <= len(b):
        tag, n = bytes(b[off:off + 4]), struct.unpack_from("<Q", b, off + 4)[0]
        if tag == b"END ":
            struct.pack_into("<QI", b, off + 12, len(b), crc32c(bytes(b[:off])))
        struct.pack_into("<I", b, off + 12 + n, crc32c(bytes(b[off:off + 12 + n])))
        off += 16 + n


def hardening():
    import struct
    # Huge finite weights: scores are NaN, so eval is an error, never HR = 1.
    big = os.path.join(tmp, "big.rsm")
    b = bytearray(open(model_path, "rb").read())
    off = 16
    while off + 16 <= len(b):
        tag, n = bytes(b[off:off + 4]), struct.unpack_from("<Q", b, off + 4)[0]
        if tag == b"WGHT":
            for k in range(n // 4):
                struct.pack_into("<f", b, off + 12 + 4 * k, 3e38)
        off += 16 + n
    reseal(b)
    open(big, "wb").write(bytes(b))
    for protocol in ("sampled", "full"):
        p = run(["eval", "--model", big, "--data", "synthetic", "--protocol", protocol,
                 "--config", config] + TINY, ok=False)
        assert "RECSYS_E_NUMERIC" in p.stderr and "HR@" not in p.stdout, (p.stdout, p.stderr)
    # A --set key of any length gets a message.
    p = run(["train", "--set", "k" * 300 + "=1"], ok=False)
    assert "unknown option" in p.stderr, p.stderr
    # A bad eval.ks is refused before training, with its location.
    p = run(["train", "--set", "eval.ks=1,x"] + TINY, ok=False)
    assert "eval.ks" in p.stderr and "epoch" not in p.stdout, p.stderr
    ks = os.path.join(tmp, "ks.yaml")
    open(ks, "w").write("eval:\n  ks: 5,zero\n")
    p = run(["train", "--config", ks], ok=False)
    assert "ks.yaml:2:7" in p.stderr, p.stderr
    # Data where nobody can be evaluated: refused before training.
    few = os.path.join(tmp, "few.txt")
    open(few, "w").write("".join(f"u{u} i{k} {k}\n" for u in range(20) for k in range(3)))
    p = run(["train", "--data", few, "--set", "trainer.epochs=1"], ok=False)
    assert "nothing to evaluate" in p.stderr and "epoch" not in p.stdout, p.stderr
    # Only regular files are read; saves never replace a device.
    p = run(["train", "--data", "/dev/zero"], ok=False)
    assert "not a regular file" in p.stderr, p.stderr
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    for args in (["train", "--config", fifo], ["train", "--data", fifo],
                 ["perflaw", "fit", fifo]):
        p = run(args, ok=False)
        assert "regular file" in p.stderr, (args, p.stderr)
    p = run(["train", "--out", "/dev/null", "--set", "trainer.epochs=1"] + TINY, ok=False)
    assert "refusing to replace" in p.stderr and os.path.exists("/dev/null"), p.stderr
    # perflaw names the line of a bad run, not its index.
    runs = os.path.join(tmp, "bad_runs.csv")
    open(runs, "w").write("layers,dim,data,NDCG@10\n# comment\n\n1,8,1,0.1\n-2,8,1,0.2\n")
    p = run(["perflaw", "fit", runs], ok=False)
    assert "bad_runs.csv:5:" in p.stderr, p.stderr
    # apen --per-user says why it cannot write.
    data = os.path.join(tmp, "seq.txt")
    p = run(["apen", "--data", data, "--m", "1", "--per-user", "/dev/full"], ok=False)
    assert "No space left" in p.stderr, p.stderr


def adapters():
    """adapt (shared, bank, per-user) on a frozen model; eval --adapters keeps
    eval's JSON; --per-user ranks agree with the NDCG; the model is unchanged."""
    before = open(model_path, "rb").read()
    common = ["--model", model_path, "--data", "synthetic", "--config", config] + TINY + [
        "--set", "adapter.epochs=1", "--set", "adapter.user_steps=3",
        "--set", "adapter.min_history=8", "--set", "adapter.rank=2"]
    outs = {}
    for mode in ("shared", "bank", "per-user"):
        out = os.path.join(tmp, mode + ".adapters")
        p = run(["adapt", "--out", out, "--mode", mode] + common)
        last = json_lines(p.stdout)[-1]
        assert last["mode"] == mode and last["adapters"] >= 1, last
        assert os.path.getsize(out) > 0
        outs[mode] = out
    assert open(model_path, "rb").read() == before
    plain = json_lines(run(["eval", "--split", "test"] + common).stdout)[-1]
    for extra in (["--adapters", outs["shared"]], ["--adapters", outs["bank"]],
                  ["--adapters", outs["per-user"], "--adapters", outs["bank"]]):
        ranks = os.path.join(tmp, "ranks.txt")
        p = run(["eval", "--split", "test", "--per-user", ranks] + extra + common)
        last = json_lines(p.stdout)[-1]
        assert set(plain) - {"seconds"} <= set(last), (plain, last)
        rows = [line.split() for line in open(ranks)]
        assert len(rows) == last["users"], (len(rows), last["users"])
        import math
        nd = sum(1 / math.log2(float(r) + 2) for _, r in rows if float(r) < 10) / len(rows)
        assert abs(nd - last["NDCG@10"]) < 1e-5, (nd, last["NDCG@10"])
    p = run(["eval", "--adapters", os.path.join(tmp, "missing")] + common, ok=False)
    assert "adapters" in p.stderr, p.stderr
    # --init: per-user LoRAs start from the shared adapter (per-user mode only).
    warm = os.path.join(tmp, "warm.adapters")
    p = run(["adapt", "--out", warm, "--mode", "per-user", "--init", outs["shared"]] + common)
    assert json_lines(p.stdout)[-1]["adapters"] >= 1, p.stdout
    p = run(["eval", "--split", "test", "--adapters", warm, "--adapters", outs["shared"]] + common)
    assert "NDCG@10" in json_lines(p.stdout)[-1]
    p = run(["adapt", "--out", warm, "--mode", "shared", "--init", outs["shared"]] + common,
            ok=False)
    assert "--init" in p.stderr, p.stderr
    p = run(["adapt", "--out", warm, "--mode", "per-user", "--init", outs["bank"]] + common,
            ok=False)
    assert "--init" in p.stderr, p.stderr


for name, fn in [("train", train), ("eval", evaluate), ("errors", errors), ("apen", apen),
                 ("sweep_and_fit", sweep_and_fit), ("hardening", hardening),
                 ("adapters", adapters)]:
    check(name, fn)
import shutil  # noqa: E402
shutil.rmtree(tmp, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
