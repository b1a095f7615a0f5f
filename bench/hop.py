"""Measure the worker hop: jobs per second through JobPool.run for a trivial hello.py (one thread).

Usage: python bench/hop.py [SITE]   (defaults to a temporary site with hello.py)
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench_setup import use_bench_venv  # noqa: E402

use_bench_venv()  # a fresh clone's system python has no ply: go on in bench/.venv

from krait.pool import jobs  # noqa: E402
from krait.pool.scheduler import JobPool  # noqa: E402
from krait.settings import Settings  # noqa: E402


def main() -> None:
    site = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    hello = os.path.join(site, "hello.py")
    if not os.path.exists(hello):
        with open(hello, "w") as f:
            f.write('krait.response = krait.Response("HTTP/1.1", 200, [], "Hello")\n')
    pool = JobPool(Settings(site_root=site, workers=1), 1)
    pool.start()
    job = jobs.Job("script", hello, "hello.py", "GET", "/hello", "/hello", "", "HTTP/1.1",
                   {"host": "x", "user-agent": "wrk"}, b"", ("127.0.0.1", 1), "http", ())
    for _ in range(200):
        pool.run(job, 5)
    n = 5000
    t = time.perf_counter()
    for _ in range(n):
        pool.run(job, 5)
    dt = time.perf_counter() - t
    print("%.1f us per job round trip (%.0f jobs/s)" % (dt / n * 1e6, n / dt))
    pool.close()


if __name__ == "__main__":
    main()
