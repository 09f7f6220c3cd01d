#!/usr/bin/env python3
"""Restarts a PostgreSQL server under load against a 3-node jobline cluster and reports.

    cargo build                                   # or --release
    sudo python3 scripts/pg-restart-drill.py      # root: it runs PostgreSQL as user postgres

It never touches a running PostgreSQL: it creates a throwaway server (initdb into a temporary
folder, its own free port and socket folder), starts three `jobline serve` nodes on it
(target/release/jobline if built, else target/debug/jobline, or $DRILL_JOBLINE_BINARY),
submits snapshots to all three for a few seconds, stops the server (`pg_ctl stop -m fast`),
keeps it down for DOWN seconds (default 3), starts it again and goes on submitting. Then it
waits until every job has ended, stops the nodes and the server, removes the folder, and
prints: jobs accepted, 503s (and any other non-202), /readyz seen 503 per node, how long
after the server was back each node accepted a submit again, jobs lost and jobs notified
more than once (both must be 0). Exits 1 if either is not 0. Bounded: at most ~3 minutes.
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

PGBIN = "/usr/lib/postgresql/15/bin"
DOWN = float(os.environ.get("DRILL_DOWN_SECONDS", "3"))
LOAD_BEFORE, LOAD_AFTER = 3.0, 6.0
DEADLINE = time.monotonic() + 180


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    if os.environ.get("DRILL_JOBLINE_BINARY"):
        return os.environ["DRILL_JOBLINE_BINARY"]
    for profile in ("release", "debug"):
        path = os.path.abspath(f"target/{profile}/jobline")
        if os.path.exists(path):
            return path
    sys.exit("build jobline first (cargo build)")


def as_postgres(*args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                          stdout=subprocess.DEVNULL, **kw)


class Server:
    def __init__(self, root):
        self.data, self.sock, self.port = f"{root}/data", f"{root}/sock", free_port()
        os.makedirs(self.sock)
        shutil.chown(root, "postgres"); shutil.chown(self.sock, "postgres")
        as_postgres(f"{PGBIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        self.log = f"{root}/postgres.log"

    def ctl(self, *args):
        as_postgres(f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30",
                    "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1", *args)

    def sql(self, query, db="drill"):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", db, "-Atc", query], check=True, capture_output=True, text=True)
        return out.stdout.strip()


class Node:
    def __init__(self, exe, url, root, n):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, JOBLINE_DATABASE_URL=url, JOBLINE_BIND=f"127.0.0.1:{self.port}",
                   JOBLINE_PUBLIC_URL=self.base, JOBLINE_RATE_LIMIT_CAPACITY="0",
                   JOBLINE_MAX_RUNNING_PER_ESHOP="10", RUST_LOG="info")
        env.pop("JOBLINE_CONFIG", None)
        self.logfile = open(f"{root}/node{n}.log", "w")
        self.proc = subprocess.Popen([exe, "serve"], cwd=root, env=env,
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        while status(f"{self.base}/readyz") != 200:
            if self.proc.poll() is not None or time.monotonic() > DEADLINE:
                sys.exit(f"node {n} did not start; see its log")
            time.sleep(0.1)


def status(url, token=None, timeout=3):
    """(status, body) of a GET; status 0 when the node did not answer."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status if token is None else (r.status, json.load(r))
    except urllib.error.HTTPError as e:
        if token is None:
            return e.code
        return e.code, {"retryAfter": e.headers.get("Retry-After")}
    except OSError:
        return 0 if token is None else (0, {})


def main():
    exe = binary()
    root = tempfile.mkdtemp(prefix="jobline-pg-drill-")
    os.chmod(root, 0o755)
    server, nodes = None, []
    try:
        server = Server(root)
        server.ctl("start")
        server.sql("CREATE DATABASE drill", db="postgres")
        url = f"postgres://postgres@127.0.0.1:{server.port}/drill"
        nodes = [Node(exe, url, root, 1)]
        env = dict(os.environ, JOBLINE_DATABASE_URL=url)
        token = subprocess.run([exe, "eshop", "add", "7", "--name", "drill"], env=env, check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
        nodes += [Node(exe, url, root, n) for n in (2, 3)]
        records, ready = [], {i: [] for i in range(3)}   # (t, node, status, job id)
        stop = threading.Event()

        def submitter(k):
            while not stop.is_set():
                i = k % 3
                k += 1
                code, body = status(f"{nodes[i].base}/api/products/snapshot", token)
                job = body.get("data", {}).get("jobId") if code == 202 else None
                records.append((time.monotonic(), i, code, job, body.get("retryAfter")))

        def readiness(i):
            while not stop.is_set():
                asked = time.monotonic()
                ready[i].append((asked, status(f"{nodes[i].base}/readyz")))
                time.sleep(0.1)

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(6)]
        threads += [threading.Thread(target=readiness, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        time.sleep(LOAD_BEFORE)
        t_stop = time.monotonic()
        server.ctl("stop", "-m", "fast")
        time.sleep(DOWN)
        server.ctl("start")
        t_up = time.monotonic()
        time.sleep(LOAD_AFTER)
        stop.set()
        for t in threads:
            t.join()

        accepted = [r[3] for r in records if r[2] == 202]
        unavailable = [r for r in records if r[2] == 503]
        other = {}
        for r in records:
            if r[2] not in (202, 503):
                other[r[2]] = other.get(r[2], 0) + 1
        back = []
        for i in range(3):
            first = min((r[0] for r in records if r[1] == i and r[2] == 202 and r[0] >= t_up),
                        default=None)
            back.append(None if first is None else first - t_up)
        not_ready = [sum(1 for _, s in ready[i] if s == 503) for i in range(3)]
        ready_again = []
        for i in range(3):
            first = min((t for t, s in ready[i] if s == 200 and t >= t_up), default=None)
            ready_again.append("never" if first is None else f"{first - t_up:.2f} s")

        while time.monotonic() < DEADLINE:
            left = int(server.sql("SELECT count(*) FROM jobs WHERE status IN ('pending','running')"))
            if left == 0:
                break
            time.sleep(0.5)
        ended = dict(line.split("|") for line in
                     server.sql("SELECT id, status FROM jobs").splitlines() if line)
        notes = dict(line.split("|") for line in server.sql(
            "SELECT event_instance, count(*) FROM notifications GROUP BY 1").splitlines() if line)
        lost = [j for j in accepted if ended.get(j) != "completed"]
        duplicates = [j for j, n in notes.items() if int(n) != 1]
        reran = int(server.sql("SELECT count(*) FROM jobs WHERE attempt > 1"))
        print(f"binary: {exe}")
        print(f"server down {t_up - t_stop:.1f} s (stop -m fast, {DOWN:.0f} s pause, start)")
        print(f"submits: {len(records)}, accepted (202): {len(accepted)}, "
              f"503: {len(unavailable)} (all with Retry-After: "
              f"{all(r[4] for r in unavailable)}), other: {other or 'none'}")
        print(f"/readyz answered 503 per node: {not_ready}; "
              f"first 200 after the server was back: {', '.join(ready_again)}")
        print("first 202 after the server was back, per node: "
              + ", ".join("never" if b is None else f"{b:.2f} s" for b in back))
        print(f"jobs run more than once (attempt > 1): {reran}")
        print(f"jobs lost: {len(lost)}, notified more than once: {len(duplicates)}")
        return 0 if not lost and not duplicates and None not in back else 1
    finally:
        for node in nodes:
            node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.proc.kill()
        if server:
            try:
                server.ctl("stop", "-m", "immediate")
            except subprocess.CalledProcessError:
                pass
        if os.environ.get("DRILL_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
