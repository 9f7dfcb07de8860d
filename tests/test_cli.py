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


for name, fn in [("train", train), ("eval", evaluate), ("errors", errors), ("apen", apen),
                 ("sweep_and_fit", sweep_and_fit)]:
    check(name, fn)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
