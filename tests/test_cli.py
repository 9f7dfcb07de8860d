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
    # Adapters trained on another base of the same shape are refused, not applied.
    other = os.path.join(tmp, "other.rsm")
    run(["train", "--config", config, "--out", other, "--set", "trainer.epochs=1",
         "--set", "trainer.seed=77"] + TINY)
    for out in outs.values():
        p = run(["eval", "--split", "test", "--adapters", out, "--model", other]
                + common[2:], ok=False)
        assert "another base model" in p.stderr, p.stderr
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


def store_records(path):
    """{slot: vector bytes} of an adapter store (docs/ADAPTERS.md, format 1)."""
    import struct
    b = open(path, "rb").read()
    assert b[:8] == b"RSADAPTS", b[:8]
    n_users, = struct.unpack_from("<Q", b, 16)
    floats, dtype = struct.unpack_from("<II", b, 24)
    index_off, data_off = struct.unpack_from("<QQ", b, 40)
    body = 24 + floats * (2 if dtype else 4)
    rec = (body + 4 + 7) // 8 * 8
    out = {}
    for u in range(n_users):
        e, = struct.unpack_from("<Q", b, index_off + 8 * u)
        if e:
            off = data_off + (e - 1) * rec
            out[u] = b[off + 24:off + body]
    return out


def adapters_cli():
    """recsys adapters inspect|merge|update on a small interaction file."""
    import hashlib
    import random
    rng = random.Random(7)
    hist, new, bad = (os.path.join(tmp, n) for n in ("hist.txt", "new.txt", "bad_new.txt"))
    with open(hist, "w") as f, open(new, "w") as g:
        for u in range(40):
            it = rng.randrange(30)
            for k in range(18):
                it = (it + rng.choice([1, 1, 2, 3])) % 30
                (f if k < 15 else g).write(f"u{u} i{it} {1000 + k}\n")
    small = ["--set", "model.max_len=10", "--set", "model.dim=8", "--set", "model.blocks=1",
             "--set", "trainer.threads=2"]
    ad = ["--set", "adapter.user_steps=3", "--set", "adapter.min_history=12",
          "--set", "adapter.rank=2"]
    base = os.path.join(tmp, "life.rsm")
    store = os.path.join(tmp, "life.store")
    run(["train", "--data", hist, "--out", base, "--set", "trainer.epochs=2"] + small)
    run(["adapt", "--model", base, "--data", hist, "--out", store, "--mode", "per-user"]
        + small + ad)
    # inspect: a store, a single file, damage
    p = run(["adapters", "inspect", store, "--user", "u1", "--user", "u2", "--history", hist]
            + small)
    info = json.loads(p.stdout)
    for key in ("kind", "rank", "alpha", "targets", "dtype", "format_version", "users",
                "users_with_adapter", "bytes_per_user", "file_bytes", "checksum_verified"):
        assert key in info, (key, info)
    assert info["type"] == "store" and info["kind"] == "user" and info["rank"] == 2
    assert info["users"] == 40 and 0 < info["users_with_adapter"] <= 40
    assert info["targets"] == ["q", "v"] and info["checksum_verified"] is True
    d = info["user_details"]
    assert [x["user"] for x in d] == ["u1", "u2"] and d[0]["present"], d
    assert set(d[0]["norms"]) == {"q", "v"} and all(v >= 0 for v in d[0]["norms"].values())
    p = run(["adapters", "inspect", store, "--user", "1"])  # slots without --history
    assert json.loads(p.stdout)["user_details"][0]["norms"] == d[0]["norms"]
    broken = os.path.join(tmp, "broken.store")
    b = bytearray(open(store, "rb").read())
    b[-20] ^= 0x40  # inside the last record
    open(broken, "wb").write(bytes(b))
    p = run(["adapters", "inspect", broken], ok=False)
    assert "RECSYS_E_FORMAT" in p.stderr and p.stdout == "", (p.stdout, p.stderr)
    # merge: one user with weight 1 is that user (ranks under eval agree)
    slots = sorted(store_records(store))[:3]
    ranks_store = os.path.join(tmp, "r_store.txt")
    ev = ["eval", "--model", base, "--data", hist, "--protocol", "full"] + small
    run(ev + ["--adapters", store, "--per-user", ranks_store])
    want = dict(line.split() for line in open(ranks_store))
    for slot in slots:
        one = os.path.join(tmp, f"one{slot}.ad")
        p = run(["adapters", "merge", "--model", base, "--adapters", store, "--users", str(slot),
                 "--weights", "1", "--out", one] + small)
        last = json_lines(p.stdout)[-1]
        assert last["merged"] == 1 and last["method"] == "linear" and last["rank"] == 2, last
        ranks = os.path.join(tmp, "r_one.txt")
        run(ev + ["--adapters", one, "--per-user", ranks])
        got = dict(line.split() for line in open(ranks))
        assert abs(float(got[str(slot)]) - float(want[str(slot)])) <= 0.5, (slot, got, want)
        i = json.loads(run(["adapters", "inspect", one]).stdout)
        assert i["type"] == "adapter" and i["kind"] == "user" and "norms" in i, i
    cohort = os.path.join(tmp, "cohort.ad")
    users_file = os.path.join(tmp, "cohort.txt")
    open(users_file, "w").write("u1\nu2\nu3\n")
    p = run(["adapters", "merge", "--model", base, "--adapters", store, "--users-file", users_file,
             "--history", hist, "--method", "ties", "--rank", "4", "--out", cohort] + small)
    last = json_lines(p.stdout)[-1]
    assert last["merged"] == 3 and last["rank"] == 4 and last["method"] == "ties", last
    run(ev + ["--adapters", cohort])
    p = run(["adapters", "merge", "--model", base, "--adapters", store, "--users", "u1,nobody",
             "--history", hist, "--out", cohort] + small, ok=False)
    assert "nobody" in p.stderr, p.stderr
    # update: only the listed users change; the base is untouched
    base_hash = hashlib.sha256(open(base, "rb").read()).hexdigest()
    before = store_records(store)
    p = run(["adapters", "update", "--model", base, "--adapters", store, "--data", new,
             "--history", hist, "--users", "u1,u5,u9"] + small + ad)
    lines = json_lines(p.stdout)
    assert [x["user"] for x in lines[:-1]] == ["u1", "u5", "u9"], lines
    for x in lines[:-1]:
        for key in ("user", "events", "loss", "ms"):
            assert key in x, (key, x)
        assert x["events"] == 3 and x["history"] == 18, x
    assert lines[-1]["updated"] == 3 and lines[-1]["new_events"] == 9, lines[-1]
    after = store_records(store)
    changed = {u for u in set(before) | set(after) if before.get(u) != after.get(u)}
    assert changed == {1, 5, 9}, changed
    assert hashlib.sha256(open(base, "rb").read()).hexdigest() == base_hash
    json.loads(run(["adapters", "inspect", store]).stdout)
    run(ev + ["--adapters", store])
    # a bad event midway: the users before it are updated (and valid), the rest untouched
    rows = open(new).read().splitlines()
    with open(bad, "w") as f:
        f.write("\n".join(r for r in rows if r.split()[0] in ("u2", "u3")) + "\n")
        f.write("u4 i_unknown 2000\n")
        f.write("\n".join(r for r in rows if r.split()[0] in ("u6", "u7")) + "\n")
    before = store_records(store)
    p = run(["adapters", "update", "--model", base, "--adapters", store, "--data", bad,
             "--history", hist] + small + ad, ok=False)
    assert "i_unknown" in p.stderr, p.stderr
    assert [x["user"] for x in json_lines(p.stdout)] == ["u2", "u3"], p.stdout
    after = store_records(store)
    changed = {u for u in set(before) | set(after) if before.get(u) != after.get(u)}
    assert changed == {2, 3}, changed
    json.loads(run(["adapters", "inspect", store]).stdout)  # every record checks out
    p = run(["adapters", "update", "--model", base, "--adapters", store, "--data", bad,
             "--history", hist, "--skip-unknown"] + small + ad)
    assert json_lines(p.stdout)[-1]["skipped_events"] == 1, p.stdout


for name, fn in [("train", train), ("eval", evaluate), ("errors", errors), ("apen", apen),
                 ("sweep_and_fit", sweep_and_fit), ("hardening", hardening),
                 ("adapters", adapters), ("adapters_cli", adapters_cli)]:
    check(name, fn)
import shutil  # noqa: E402
shutil.rmtree(tmp, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
