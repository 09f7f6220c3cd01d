#!/usr/bin/env python3
"""Peak memory of a products snapshot against catalogue size.

    cargo build --release
    python3 benches/snapshot_memory.py 50000          # products; prints one line of figures

Starts `target/release/jobline serve` (or $BENCH_JOBLINE_BINARY) on a fresh SQLite file in a temporary
folder, creates N products through the API, runs one snapshot and prints its time, the
result's size and the server's peak RSS (VmHWM) before and after the snapshot. Loopback only.
"""
import json, subprocess, time, urllib.request, os, sys, tempfile, concurrent.futures as cf
n = int(sys.argv[1]); port = int(sys.argv[2]) if len(sys.argv) > 2 else 18300
d = tempfile.mkdtemp(prefix="jobline-snapshot-")
binary = os.environ.get("BENCH_JOBLINE_BINARY", os.path.abspath("target/release/jobline"))
env = dict(os.environ, JOBLINE_BIND=f"127.0.0.1:{port}", JOBLINE_RATE_LIMIT_CAPACITY="0", RUST_LOG="warn")
p = subprocess.Popen([binary, "serve"], cwd=d, env=env, stdout=subprocess.PIPE, text=True)
# The demo e-shop's token is the line after the one announcing it (an operator's comes first).
while "demo e-shop" not in p.stdout.readline(): pass
token = p.stdout.readline().strip()
def req(method, path, body=None):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r))
def create(i): req("POST","/api/products",{"data":{"code":f"C{i}","name":f"Product number {i} with a reasonably long name for realism","visibility":"visible"}})
with cf.ThreadPoolExecutor(16) as ex: list(ex.map(create, range(n)))
def hwm():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmHWM"): return l.split()[1]
before = hwm()
t=time.time(); job = req("GET","/api/products/snapshot")["data"]["jobId"]
det = req("GET", f"/api/system/jobs/{job}?wait=60")["data"]
el=time.time()-t
size = int(urllib.request.urlopen(det["resultUrl"]).headers["Content-Length"])
print(f"products={n} status={det['status']} snapshot {el:.2f}s result {size} bytes; peak RSS before snapshot {before} kB, after {hwm()} kB")
p.terminate(); p.wait()
