"""recsys recommend and recsys serve end to end: a demo model trained here,
JSON lines through `recommend`, and the HTTP server on a free 127.0.0.1
port with real requests over sockets (good, malformed, oversized,
concurrent), reloads under load (POST /v1/reload and SIGHUP) losing no
request, /metrics and /healthz."""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

RECSYS = sys.argv[1]
ROOT = sys.argv[2]
passed = failed = 0
tmp = tempfile.mkdtemp()
model = os.path.join(tmp, "m.rsm")
model2 = os.path.join(tmp, "m2.rsm")
TINY = ["--set", "data.synthetic_users=300", "--set", "data.synthetic_items=80",
        "--set", "model.max_len=20", "--set", "model.dim=16", "--set", "trainer.threads=1",
        "--set", "trainer.epochs=1"]
config = os.path.join(ROOT, "examples", "configs", "demo.yaml")


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok {name}")
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {name}: {e!r}")


def run(args, stdin=None):
    return subprocess.run([RECSYS] + args, input=stdin, capture_output=True, text=True,
                          timeout=300)


p = run(["train", "--config", config, "--out", model] + TINY)
assert p.returncode == 0, p.stderr
p = run(["train", "--config", config, "--out", model2, "--set", "trainer.seed=7"] + TINY)
assert p.returncode == 0, p.stderr


def recommend():
    lines = [{"user": "u1", "history": ["1", "2", "3"], "times": [10, 20, 30], "k": 3},
             {"user": 7, "history": [5, 6]},
             {"history": ["1", "nope"]}]
    text = "\n".join(json.dumps(l) for l in lines) + "\nnot json\n{\"history\": 3}\n"
    p = run(["recommend", "--model", model, "--k", "4", "--exclude-history", "--batch", "2"],
            text)
    assert p.returncode == 0, p.stderr
    out = [json.loads(l) for l in p.stdout.splitlines()]
    assert len(out) == 5, out
    assert out[0]["user"] == "u1" and len(out[0]["items"]) == 3
    assert not set(out[0]["items"]) & {"1", "2", "3"}
    assert out[0]["scores"] == sorted(out[0]["scores"], reverse=True)
    assert out[1]["user"] == 7 and len(out[1]["items"]) == 4
    assert out[2]["unknown"] == 1
    assert "error" in out[3] and "error" in out[4]
    # the same request alone gives the same answer as inside a batch
    p2 = run(["recommend", "--model", model, "--k", "4", "--exclude-history"],
             json.dumps(lines[1]) + "\n")
    assert json.loads(p2.stdout) == out[1]
    # --input FILE
    f = os.path.join(tmp, "req.jsonl")
    with open(f, "w") as fh:
        fh.write(json.dumps(lines[0]) + "\n")
    p3 = run(["recommend", "--model", model, "--exclude-history", "--input", f])
    assert json.loads(p3.stdout) == out[0]


check("recommend", recommend)


class Server:
    def __init__(self, *extra, model=model):
        self.p = subprocess.Popen([RECSYS, "serve", "--model", model, "--port", "0",
                                   "--threads", "2", "--max-body", "4096"] + list(extra),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        info = json.loads(line)
        self.port = int(info["listening"].rsplit(":", 1)[1])

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=30)
        return self.p.returncode


srv = Server()
REQ = {"user": "a", "history": ["1", "2", "3", "4"], "times": [1, 2, 3, 4], "k": 5}


def http_good():
    st, body = srv.request("GET", "/healthz")
    assert st == 200 and json.loads(body)["status"] == "ok"
    st, body = srv.request("POST", "/v1/recommend", json.dumps(REQ))
    assert st == 200, body
    r = json.loads(body)
    assert r["user"] == "a" and len(r["items"]) == 5
    st, body = srv.request("POST", "/v1/recommend", json.dumps({"requests": [REQ, REQ]}))
    rb = json.loads(body)
    assert st == 200 and len(rb["results"]) == 2 and rb["results"][0] == r
    # the same answer as recommend
    p = run(["recommend", "--model", model], json.dumps(REQ) + "\n")
    assert json.loads(p.stdout) == r


def http_bad():
    for body in [b"{", b"[1, 2]", b"{\"history\": \"x\"}", b"{\"history\": [1], \"k\": 0}",
                 b"{\"history\": [1], \"times\": [1, 2]}", b"{\"bogus\": 1, \"history\": []}",
                 b"\xff\xfe\x00", b"", b"{\"history\": [1], \"times\": [5, 4]}",
                 # errors quoting bytes that are not UTF-8 (found by fuzz_request)
                 b"\"\\\xc2\x9d\xa3", b"{\"history\": [\"\xc3\x28\"]}"]:
        st, data = srv.request("POST", "/v1/recommend", body)
        assert st == 400, (body, st, data)
        assert "error" in json.loads(data)
    st, _ = srv.request("GET", "/v1/recommend")
    assert st == 405
    st, _ = srv.request("GET", "/nope")
    assert st == 404
    st, data = srv.request("POST", "/v1/recommend", b"x" * 10000)
    assert st == 413, st
    # chunked body, too big: also 413
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    c.putrequest("POST", "/v1/recommend")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for _ in range(10):
        c.send(b"400\r\n" + b"y" * 1024 + b"\r\n")
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    assert r.status == 413, r.status
    c.close()
    st, _ = srv.request("GET", "/healthz")
    assert st == 200  # still alive


def load(n_threads, per_thread, results):
    def worker():
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        for _ in range(per_thread):
            try:
                c.request("POST", "/v1/recommend", json.dumps(REQ))
                r = c.getresponse()
                r.read()
                results.append(r.status)
            except Exception as e:  # noqa: BLE001
                results.append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.close()
    ts = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in ts:
        t.start()
    return ts


def http_concurrent_and_reload():
    results = []
    ts = load(6, 60, results)
    gens = []
    for i in range(4):
        time.sleep(0.05)
        os.replace(model2 if i % 2 == 0 else model, os.path.join(tmp, "swap.rsm"))
        os.replace(os.path.join(tmp, "swap.rsm"), model2 if i % 2 == 0 else model)
        st, body = srv.request("POST", "/v1/reload")
        assert st == 200, body
        gens.append(json.loads(body)["generation"])
        srv.p.send_signal(signal.SIGHUP)
    for t in ts:
        t.join()
    assert len(results) == 360 and all(r == 200 for r in results), \
        [r for r in results if r != 200][:5]
    assert gens == sorted(gens) and len(set(gens)) == 4
    time.sleep(0.2)
    st, body = srv.request("GET", "/metrics")
    text = body.decode()
    assert st == 200
    assert 'recsys_http_requests_total{endpoint="/v1/recommend"}' in text
    assert "recsys_request_duration_seconds_bucket" in text
    reloads = [l for l in text.splitlines() if l.startswith('recsys_model_reloads_total{result="ok"}')]
    assert int(reloads[0].split()[-1]) >= 8, reloads  # 4 POSTs + 4 SIGHUPs
    # a reload of a broken file fails cleanly and keeps serving
    with open(model, "rb") as fh:
        good = fh.read()
    with open(model, "wb") as fh:
        fh.write(b"junk")
    st, body = srv.request("POST", "/v1/reload")
    assert st == 500 and "error" in json.loads(body)
    with open(model, "wb") as fh:
        fh.write(good)
    st, _ = srv.request("POST", "/v1/recommend", json.dumps(REQ))
    assert st == 200


check("http_good", http_good)
check("http_bad", http_bad)
check("http_concurrent_and_reload", http_concurrent_and_reload)
def http_stop():
    rc = srv.stop()
    err = srv.p.stderr.read()
    assert rc == 0, (rc, err[-2000:])


check("http_stop", http_stop)


def adapters():
    """--adapters STORE: a request's "user" (external id via --data) picks its
    per-user adapter: different scores from the base for a user with one, the
    base's for a user without; the ranks equal `recsys eval --adapters`
    (full protocol, history excluded); serve answers as recommend."""
    import random
    rnd = random.Random(3)
    n_items, seqs = 40, []
    for u in range(40):
        start, n = rnd.randrange(n_items), (26 if u % 2 == 0 else 9)
        step = 1 + u % 3
        seq = []
        while len(seq) < n:  # a walk with noise, no repeats
            it = (start + step * len(seq) + (rnd.randrange(3) if rnd.random() < 0.3 else 0)) % n_items
            while it in seq:
                it = (it + 1) % n_items
            seq.append(it)
        seqs.append(seq)
    data = os.path.join(tmp, "events.txt")
    with open(data, "w") as fh:
        for u, seq in enumerate(seqs):
            for t, it in enumerate(seq):
                fh.write(f"u{u} i{it} {1000 + t}\n")
    m = os.path.join(tmp, "ad.rsm")
    store = os.path.join(tmp, "users.adapters")
    tiny = ["--config", config, "--set", f"data.path={data}", "--set", "model.max_len=20",
            "--set", "model.dim=16", "--set", "trainer.threads=1", "--set", "trainer.epochs=2"]
    p = run(["train", "--out", m] + tiny)
    assert p.returncode == 0, p.stderr
    p = run(["adapt", "--model", m, "--out", store, "--mode", "per-user", "--set",
             "adapter.min_history=15", "--set", "adapter.user_steps=30", "--set",
             "adapter.lr=0.05", "--set", "adapter.rank=2"] + tiny)
    assert p.returncode == 0, p.stderr
    ranks = os.path.join(tmp, "ranks.txt")
    p = run(["eval", "--model", m, "--adapters", store, "--protocol", "full", "--split", "test",
             "--per-user", ranks] + tiny)
    assert p.returncode == 0, p.stderr
    rank = {int(u): float(r) for u, r in (l.split() for l in open(ranks))}
    reqs = [{"user": f"u{u}", "history": [f"i{i}" for i in seqs[u][:-1]], "k": n_items,
             "exclude_history": True} for u in range(len(seqs))]
    text = "".join(json.dumps(r) + "\n" for r in reqs)
    base = [json.loads(l) for l in run(["recommend", "--model", m], text).stdout.splitlines()]
    p = run(["recommend", "--model", m, "--adapters", store, "--data", data], text)
    assert p.returncode == 0, p.stderr
    got = [json.loads(l) for l in p.stdout.splitlines()]
    assert len(got) == len(seqs), got[:2]
    for u in range(len(seqs)):
        if u % 2 == 0:
            assert got[u]["scores"] != base[u]["scores"], u  # its own adapter
        else:
            assert got[u] == base[u], u  # no adapter: the base model
        if u in rank:  # the target's place among the non-history items
            pos = got[u]["items"].index(f"i{seqs[u][-1]}")
            assert abs(pos - rank[u]) < 1e-9, (u, pos, rank[u])
    assert len(rank) >= len(seqs) // 2, rank
    # dense ids without --data: user u's dense id is u (users in order of first event)
    p = run(["recommend", "--model", m, "--adapters", store],
            json.dumps(dict(reqs[2], user=2)) + "\n")
    assert json.loads(p.stdout)["scores"] == got[2]["scores"], p.stdout
    # serve: the same answers, a batch mixing users with and without adapters
    s = Server("--adapters", store, "--data", data, model=m)
    try:
        st, body = s.request("POST", "/v1/recommend", json.dumps({"requests": reqs[:6]}))
        assert st == 200, body
        assert json.loads(body)["results"] == got[:6]
    finally:
        assert s.stop() == 0
    # a bank file: every request mixed by the gate (differs from the base)
    bank = os.path.join(tmp, "bank.adapter")
    p = run(["adapt", "--model", m, "--out", bank, "--mode", "bank", "--set", "adapter.epochs=1",
             "--set", "adapter.rank=2", "--set", "adapter.gate_window=8"] + tiny)
    assert p.returncode == 0, p.stderr
    p = run(["recommend", "--model", m, "--adapters", bank], text)
    assert p.returncode == 0, p.stderr
    bk = [json.loads(l) for l in p.stdout.splitlines()]
    assert all(bk[u]["scores"] != base[u]["scores"] for u in range(len(seqs)))
    p = run(["recommend", "--model", m, "--adapters", os.path.join(tmp, "missing")], text)
    assert p.returncode != 0 and "adapters" in p.stderr, p.stderr


check("adapters", adapters)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
