#!/usr/bin/env python3
"""A queue's worker pool, backlog and throughput over time during a burst, plotted from
/metrics samples of the real jobline binary.

    cargo build --release
    python3 -m venv /tmp/plot && /tmp/plot/bin/pip install matplotlib
    /tmp/plot/bin/python scripts/pool_burst.py docs/pool-burst.png

Starts `target/release/jobline serve` (or $BENCH_JOBLINE_BINARY) on a fresh SQLite file in
a temporary folder (or on $BURST_DATABASE_URL, an empty PostgreSQL database), with 8
e-shops of 10 products each (the per-e-shop cap of 2 running jobs then allows 16 at once)
and the default pool configuration. It scrapes /metrics every 100 ms, waits 2 s, submits
$JOBS snapshot requests (3000) with $CLIENTS (32) in flight, waits until every job has
ended and the pool is back at `min_workers` (after `idle_timeout`, 10 s by default), then
stops the server and plots the snapshots queue: pool size and busy workers against the
bounds, the backlog (pending jobs), and jobs completed per second. Loopback only.
"""
import concurrent.futures as cf
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "pool-burst.png"
JOBS = int(os.environ.get("JOBS", "3000"))
CLIENTS = int(os.environ.get("CLIENTS", "32"))
ESHOPS = 8
QUEUE = "snapshots"
ENDPOINT = "/api/products/snapshot"

binary = os.environ.get("BENCH_JOBLINE_BINARY", os.path.abspath("target/release/jobline"))
folder = tempfile.mkdtemp(prefix="jobline-burst-")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
base = f"http://127.0.0.1:{port}"
env = dict(
    os.environ,
    JOBLINE_DATABASE_URL=os.environ.get("BURST_DATABASE_URL", f"sqlite://{folder}/burst.db"),
    JOBLINE_BIND=f"127.0.0.1:{port}",
    JOBLINE_RATE_LIMIT_CAPACITY="0",
    RUST_LOG=os.environ.get("RUST_LOG", "warn,jobline::actors::queue=debug"),
)


def cli(*args):
    out = subprocess.run([binary, *args], cwd=folder, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


cli("migrate")
tokens = [cli("eshop", "add", str(i)) for i in range(1, ESHOPS + 1)]
log = open(os.path.join(folder, "server.log"), "w")
server = subprocess.Popen([binary, "serve"], cwd=folder, env=env, stdout=log, stderr=log)


def call(method, path, token, body=None):
    req = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return r.status


for _ in range(100):
    try:
        urllib.request.urlopen(base + "/healthz")
        break
    except OSError:
        time.sleep(0.1)
for i, token in enumerate(tokens):
    for p in range(10):
        call("POST", "/api/products", token, {"data": {"code": f"P{i}-{p}", "name": "Burst product"}})


def scrape():
    values = {}
    with urllib.request.urlopen(base + "/metrics") as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                values[series] = float(value)
    return values


samples = []  # (seconds since start, series → value)
stop = threading.Event()
t0 = time.monotonic()


def sampler():
    while not stop.is_set():
        samples.append((time.monotonic() - t0, scrape()))
        time.sleep(0.1)


def series(name, **labels):
    key = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return [s.get(key, 0.0) for _, s in samples]


threading.Thread(target=sampler, daemon=True).start()
time.sleep(2)
burst_start = time.monotonic() - t0
with cf.ThreadPoolExecutor(CLIENTS) as ex:
    answers = list(ex.map(lambda i: call("GET", ENDPOINT, tokens[i % ESHOPS]), range(JOBS)))
burst_end = time.monotonic() - t0
assert all(a == 202 for a in answers), "every request is accepted"


def last(name, **labels):
    return series(name, **labels)[-1] if samples else 0.0


while last("jobline_jobs_finished_total", endpoint=ENDPOINT, status="completed") < JOBS:
    time.sleep(0.2)
drained = time.monotonic() - t0
while last("jobline_pool_workers", queue=QUEUE) > last("jobline_pool_min_workers", queue=QUEUE):
    time.sleep(0.2)
time.sleep(1)
stop.set()
time.sleep(0.2)
server.terminate()
server.wait()

t = [s[0] for s in samples]
size = series("jobline_pool_workers", queue=QUEUE)
busy = series("jobline_pool_busy_workers", queue=QUEUE)
low = series("jobline_pool_min_workers", queue=QUEUE)
high = series("jobline_pool_max_workers", queue=QUEUE)
pending = series("jobline_queue_pending_jobs", queue=QUEUE)
completed = series("jobline_jobs_finished_total", endpoint=ENDPOINT, status="completed")
rate = [0.0] + [
    (completed[i] - completed[i - 1]) / (t[i] - t[i - 1]) if t[i] > t[i - 1] else 0.0 for i in range(1, len(t))
]
# Smooth over 5 samples (0.5 s): a scrape sees the commits of a moment in bursts.
smooth = [sum(rate[max(0, i - 4) : i + 1]) / len(rate[max(0, i - 4) : i + 1]) for i in range(len(rate))]

fig, (a1, a2, a3) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5))
a1.step(t, size, where="post", label="pool size", color="tab:blue")
a1.step(t, busy, where="post", label="busy workers", color="tab:orange", alpha=0.8)
a1.plot(t, high, "--", color="grey", label="max_workers")
a1.plot(t, low, ":", color="grey", label="min_workers")
a1.set_ylabel("workers")
a1.legend(loc="upper right", fontsize=8)
a2.plot(t, pending, color="tab:red")
a2.set_ylabel("pending jobs")
a3.plot(t, smooth, color="tab:green")
a3.set_ylabel("completed jobs/s")
a3.set_xlabel("seconds")
for ax in (a1, a2, a3):
    ax.axvspan(burst_start, burst_end, color="tab:blue", alpha=0.08)
    ax.grid(alpha=0.3)
backend = "PostgreSQL" if "BURST_DATABASE_URL" in os.environ else "SQLite"
a1.set_title(
    f"queue {QUEUE}: burst of {JOBS} snapshot requests ({CLIENTS} in flight), {backend}, default pool settings\n"
    f"(shaded: submitting; every job done at {drained - burst_start:.1f} s after the first submit)",
    fontsize=9,
)
fig.tight_layout()
fig.savefig(OUT, dpi=110)
first_max = next((t[i] - burst_start for i in range(len(t)) if t[i] >= burst_start and size[i] >= max(high)), None)
print(
    f"{JOBS} jobs in {drained - burst_start:.2f} s ({JOBS / (drained - burst_start):.0f} jobs/s end to end); "
    f"pool {min(size):.0f}..{max(size):.0f} (bounds {low[-1]:.0f}..{high[-1]:.0f}); "
    f"max_workers reached {first_max:.2f} s after the first submit; peak {max(smooth):.0f} jobs/s; "
    f"plot: {OUT}; server log: {folder}/server.log"
)
