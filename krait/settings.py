# Settings: every tunable of one Krait server, as one frozen record.
#
# The command line (krait/server/cli.py) fills it; the server, channels and pool read it. Defaults come from
# krait/limits.py so a limit is written in exactly one place; the default worker count is the number of
# CPUs this process may use (usable_cpus()). Settings is picklable: worker processes receive it when they
# start.

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from krait import limits


def usable_cpus(proc_cgroup: str = "/proc/self/cgroup", cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process may use: its affinity mask (taskset, cpusets), capped by the CPU quota of its
    cgroup or of any cgroup above it (a container's, a systemd unit's CPUQuota=), rounded up; at least 1.
    Both cgroup versions count: v2's cpu.max, and v1's cpu.cfs_quota_us / cpu.cfs_period_us in the
    hierarchy that holds the cpu controller."""
    count: int | float
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = ["0::/"]
    for line in lines:  # "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if not controllers:
            count = min(count, _quota(cgroup_root, path, _v2_quota))
        elif "cpu" in controllers.split(","):
            count = min(count, _quota(os.path.join(cgroup_root, controllers), path, _v1_quota))
    return max(1, int(count))


def _quota(root: str, path: str, read) -> int | float:
    """The smallest quota, in CPUs rounded up, of the cgroup `path` and those above it, under the
    hierarchy mounted at `root` (a path outside this namespace's view counts as the root)."""
    root = os.path.normpath(root)
    folder = os.path.normpath(os.path.join(root, path.lstrip("/")))
    if folder != root and not folder.startswith(root + os.sep):
        folder = root
    found: int | float = math.inf
    while True:
        try:
            found = min(found, read(folder))
        except (OSError, ValueError):  # no such file, or not a number: no quota here
            pass
        if folder == root:
            return found
        folder = os.path.dirname(folder)


def _v2_quota(folder: str) -> int | float:
    with open(os.path.join(folder, "cpu.max"), encoding="ascii") as f:
        quota, period = f.read().split()[:2]
    return math.inf if quota == "max" else math.ceil(int(quota) / int(period))  # "max 100000": none


def _v1_quota(folder: str) -> int | float:
    with open(os.path.join(folder, "cpu.cfs_quota_us"), encoding="ascii") as f:
        quota = int(f.read())
    with open(os.path.join(folder, "cpu.cfs_period_us"), encoding="ascii") as f:
        period = int(f.read())
    return math.inf if quota < 0 else math.ceil(quota / period)  # -1: none


_CPUS = usable_cpus()  # the default count of both kinds of worker


@dataclass(frozen=True)
class Settings:
    site_root: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = _CPUS
    processes: int = 1
    timeout: float = limits.SCRIPT_TIMEOUT
    debug: bool = False
    max_body_size: int = limits.MAX_BODY_SIZE
    max_request_line: int = limits.MAX_REQUEST_LINE
    max_header_line: int = limits.MAX_HEADER_LINE
    max_header_block: int = limits.MAX_HEADER_BLOCK
    max_header_count: int = limits.MAX_HEADER_COUNT
    max_chunk_line: int = limits.MAX_CHUNK_LINE
    header_timeout: float = limits.HEADER_TIMEOUT
    keepalive_timeout: float = limits.KEEPALIVE_TIMEOUT
    min_body_rate: int = limits.MIN_BODY_RATE
    body_rate_grace: float = limits.BODY_RATE_GRACE
    send_timeout: float = limits.SEND_TIMEOUT
    min_send_rate: int = limits.MIN_SEND_RATE
    max_connections: int = limits.MAX_CONNECTIONS
    max_connections_per_ip: int = limits.MAX_CONNECTIONS_PER_IP
    max_queued_jobs: int = limits.MAX_QUEUED_JOBS
    max_requests: int = limits.MAX_REQUESTS_PER_WORKER
    graceful_timeout: float = limits.GRACEFUL_TIMEOUT
    max_websockets: int = limits.MAX_WEBSOCKETS
    max_ws_message: int = limits.MAX_WS_MESSAGE
    ws_workers: int = _CPUS
    ws_ping_interval: float = limits.WS_PING_INTERVAL
    ws_ping_timeout: float = limits.WS_PING_TIMEOUT
    access_log: str | None = None
    log_level: str = "info"
    certfile: str | None = None
    keyfile: str | None = None
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    gzip: bool = True
    template_cache_size: int = limits.TEMPLATE_CACHE_SIZE

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    def http_limits(self) -> dict[str, int]:
        """Keyword arguments for krait.http.Connection."""
        return {
            "max_request_line": self.max_request_line,
            "max_header_line": self.max_header_line,
            "max_header_block": self.max_header_block,
            "max_header_count": self.max_header_count,
            "max_body_size": self.max_body_size,
            "max_chunk_line": self.max_chunk_line,
        }
