"""Crash tests of saves (run by meson; RECSYS_CRASH_TRIALS sets the count):
kill -9 at random moments while a process saves model files and training
checkpoints over and over; after each kill the target must load and hold a
whole version, and the next save must leave no temp file. Then saves onto a
full file system and into a read-only one (small tmpfs mounts; skipped,
with the reason, when mounting is not allowed)."""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SAVER = sys.argv[1]
TRIALS = int(os.environ.get("RECSYS_CRASH_TRIALS", "6"))
rng = random.Random(int(os.environ.get("RECSYS_CRASH_SEED", "12345")))
tmp = tempfile.mkdtemp(prefix="rs_crash_")
failed = 0


def fail(msg):
    global failed
    failed += 1
    print("FAIL", msg)


def temps(d):
    return [n for n in os.listdir(d) if ".tmp." in n]


def check(path):
    p = subprocess.run([SAVER, "check", path], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def kill_trials():
    left_behind = 0
    for trial in range(TRIALS):
        kind = "train" if trial % 2 else "model"
        path = os.path.join(tmp, f"{kind}.rsm")
        p = subprocess.Popen([SAVER, "loop", path, kind], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            fail(f"trial {trial}: the saver did not start: {p.stderr.read()}")
            p.kill()
            continue
        time.sleep(rng.uniform(0.0, 0.25))
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        rc, out, err = check(path)
        if rc != 0:
            fail(f"trial {trial} ({kind}): after kill -9 the file does not load: {err}")
            continue
        version = float(out)
        if version != int(version) or version < 0:
            fail(f"trial {trial}: version {out} is neither the old nor a new one")
        left_behind += len(temps(tmp))
        r = subprocess.run([SAVER, "once", path, kind], capture_output=True, text=True, timeout=60)
        rc, out, err = check(path)
        if r.returncode != 0 or rc != 0 or float(out) != 1000000:
            fail(f"trial {trial}: the save after the kill failed: {r.stderr} {err}")
        if temps(tmp):
            fail(f"trial {trial}: temp files remain after the next save: {temps(tmp)}")
    print(f"ok kill -9 during saves: {TRIALS} trials, every file whole, "
          f"{left_behind} temp files left by killed saves, all removed by the next save")


def mount(path, opts):
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                          capture_output=True, text=True)


def full_and_readonly():
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    if os.geteuid() != 0:
        print("SKIP full and read-only file systems: mounting a small tmpfs needs root")
        return
    r = mount(mnt, "size=256k")
    if r.returncode != 0:
        print(f"SKIP full and read-only file systems: cannot mount a tmpfs ({r.stderr.strip()})")
        return
    try:
        path = os.path.join(mnt, "m.rsm")
        r = subprocess.run([SAVER, "once", path], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail(f"a small save onto the tmpfs failed: {r.stderr}")
            return
        # Full: a 1 MB model onto 256 KiB.
        r = subprocess.run([SAVER, "big", path], capture_output=True, text=True, timeout=60)
        if r.returncode != 3 or "No space left" not in r.stderr:
            fail(f"save onto a full file system: rc {r.returncode}, {r.stderr}")
        rc, out, _ = check(path)
        if rc != 0 or float(out) != 1000000 or temps(mnt):
            fail("a failed save onto a full file system damaged the old file or left a temp file")
        else:
            print("ok full file system: clean RECSYS_E_IO, old file intact, no temp file")
        # Read-only.
        r = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"SKIP read-only file system: cannot remount read-only ({r.stderr.strip()})")
            return
        r = subprocess.run([SAVER, "once", path], capture_output=True, text=True, timeout=60)
        rc, out, _ = check(path)
        if r.returncode != 3 or "Read-only" not in r.stderr or rc != 0 or float(out) != 1000000:
            fail(f"save into a read-only directory: rc {r.returncode}, {r.stderr}")
        else:
            print("ok read-only file system: clean RECSYS_E_IO, old file intact")
    finally:
        subprocess.run(["umount", mnt], capture_output=True)


kill_trials()
full_and_readonly()
shutil.rmtree(tmp, ignore_errors=True)
print(f"{'FAILED' if failed else 'passed'}: {failed} failures")
sys.exit(1 if failed else 0)
