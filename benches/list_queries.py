#!/usr/bin/env python3
"""Response times of the jobs lists, /metrics and every dashboard page on a seeded history.

    cargo build --release
    python3 benches/list_queries.py sqlite 1000000
    python3 benches/list_queries.py postgres 1000000      # needs psql and TEST_POSTGRES_URL

Migrates a fresh database (a SQLite file in a temporary folder, or a new PostgreSQL database
on $TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432), inserts N synthetic jobs
with one SQL statement (100 e-shops, 29 days of history: mostly `expired`, the last day
`completed`, one in a thousand `failed`, a few hundred `pending`), adds e-shop 1 and an
operator, starts `target/release/jobline serve` (or $BENCH_JOBLINE_BINARY) on it, signs in to
the dashboard, and prints the median of 5 requests per URL as a Markdown table. Loopback only;
the PostgreSQL database is dropped at the end.
"""
import os, re, statistics, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request

backend, n = sys.argv[1], int(sys.argv[2])
port = int(os.environ.get("BENCH_PORT", "18420"))
binary = os.environ.get("BENCH_JOBLINE_BINARY", os.path.abspath("target/release/jobline"))
folder = tempfile.mkdtemp(prefix="jobline-lists-")
DAY = 86_400_000_000
now = int(time.time() * 1_000_000)
start = now - 29 * DAY
step = 29 * DAY // n

# One statement per backend; ids are 7 digits (a valid job id), e-shops 1..100.
COLUMNS = """INSERT INTO jobs (id, eshop_id, endpoint, queue, status, params, creation_time,
  started_time, completion_time, attempt, result_secret, result_ext, result_content_type,
  result_size, valid_until, log)"""
def row(i, pad):
    return f"""SELECT {pad}, 1 + ({i} % 100),
  CASE WHEN {i} % 5 = 0 THEN '/api/products/images' ELSE '/api/products/snapshot' END,
  CASE WHEN {i} % 5 = 0 THEN 'images' ELSE 'snapshots' END,
  CASE WHEN {i} > {n} - 300 THEN 'pending'
       WHEN {i} % 1000 = 7 THEN 'failed'
       WHEN {start} + {i} * {step} > {now} - {DAY} THEN 'completed'
       ELSE 'expired' END,
  '{{}}', {start} + {i} * {step},
  CASE WHEN {i} > {n} - 300 THEN NULL ELSE {start} + {i} * {step} + 1000000 END,
  CASE WHEN {i} > {n} - 300 THEN NULL ELSE {start} + {i} * {step} + 2000000 END,
  CASE WHEN {i} > {n} - 300 THEN 0 ELSE 1 END, 'secret', 'json', 'application/json', 100,
  CASE WHEN {i} > {n} - 300 THEN NULL ELSE {start} + {i} * {step} + {DAY} END,
  'seeded'"""

def run(args, **kw):
    return subprocess.run([binary] + args, env=env, cwd=folder, check=True, capture_output=True, text=True, **kw)

if backend == "sqlite":
    url = f"sqlite://{folder}/jobline.db"
    env = dict(os.environ, JOBLINE_DATABASE_URL=url)
    run(["migrate"])
    sql = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) {COLUMNS} {row('i', 'printf(%s, i)' % repr('%07d'))} FROM s;"
    seed = ["sqlite3", f"{folder}/jobline.db", sql]
else:
    server = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    name = f"jobline_lists_{os.getpid()}"
    subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], check=True)
    url = f"{server}/{name}"
    env = dict(os.environ, JOBLINE_DATABASE_URL=url)
    run(["migrate"])
    sql = f"{COLUMNS} {row('i', 'lpad(i::text, 7, %s)' % repr('0'))} FROM generate_series(1::bigint, {n}) AS s(i); ANALYZE jobs;"
    seed = ["psql", url, "-qc", sql]
t = time.time()
subprocess.run(seed, check=True)
seeded = time.time() - t
token = run(["eshop", "add", "1"]).stdout.strip().splitlines()[-1]
operator = run(["operator", "add", "bench"]).stdout.strip().splitlines()[-1]
env.update(JOBLINE_BIND=f"127.0.0.1:{port}", JOBLINE_RATE_LIMIT_CAPACITY="0", RUST_LOG="warn",
           JOBLINE_QUEUES__SNAPSHOTS__WORKERS="0", JOBLINE_QUEUES__IMAGES__WORKERS="0")
server_proc = subprocess.Popen([binary, "serve"], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(NoRedirect)

def fetch(path, headers=None, data=None):
    req = urllib.request.Request(base + path, headers=headers or {}, data=data)
    try:
        with opener.open(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()

for _ in range(100):
    try:
        if fetch("/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.1)

status, headers, body = fetch("/dashboard/login")
csrf = re.search(rb'name="csrf" value="([0-9a-f]+)"', body).group(1).decode()
form = urllib.parse.urlencode({"token": operator, "csrf": csrf}).encode()
status, headers, _ = fetch("/dashboard/login", {"Cookie": f"jobline_login={csrf}"}, form)
assert status == 303, (status, headers)
session = re.search(r"jobline_session=([0-9a-f]+)", " ".join(headers.get_all("Set-Cookie"))).group(1)
dash = {"Cookie": f"jobline_session={session}"}
api = {"Authorization": f"Bearer {token}"}

def median_ms(path, headers):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        status, _, _ = fetch(path, headers)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, (path, status)
    return statistics.median(times)

one = "%07d" % (n // 2)
cases = [
    ("GET /api/system/jobs", api),
    ("GET /api/system/jobs?status=completed", api),
    ("GET /api/system/jobs?status=failed", api),
    ("GET /api/system/jobs?status=killed", api),
    ("GET /api/system/jobs?page=50", api),
    ("GET /metrics", {}),
    ("GET /dashboard", dash),
    ("GET /dashboard/jobs", dash),
    ("GET /dashboard/jobs?q=1", dash),
    ("GET /dashboard/jobs?q=1&status=failed", dash),
    (f"GET /dashboard/jobs?q={one}", dash),
    ("GET /dashboard/jobs?status=pending", dash),
    ("GET /dashboard/jobs?status=failed", dash),
    (f"GET /dashboard/jobs/{one}", dash),
    ("GET /dashboard/webhooks", dash),
]
try:
    print(f"{backend}, {n} jobs (seeded in {seeded:.0f} s), median of 5:\n")
    print("| request | ms |\n|---|---:|")
    for label, headers in cases:
        print(f"| `{label}` | {median_ms(label.split(' ', 1)[1], headers):.1f} |")
finally:
    server_proc.terminate()
    server_proc.wait()
    if backend != "sqlite":
        subprocess.run(["psql", server, "-qc", f"DROP DATABASE {name}"], check=True)
