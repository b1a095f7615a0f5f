"""krait/settings.py: the default worker count is the number of CPUs this process may use, from its
affinity mask and the cgroup CPU quotas (v2 and v1) on the way to its cgroup, read from files in a temp
folder."""

import os
import subprocess
import sys

import pytest

from krait.settings import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


def cgroups(tmp_path, own: str, quotas: dict[str, str]) -> tuple[str, str]:
    """A /proc/self/cgroup naming `own`, and a cgroup tree with cpu.max files: (proc file, root)."""
    proc = tmp_path / "cgroup"
    proc.write_text("1:cpu:/ignored/v1/line\n0::%s\n" % own)
    root = tmp_path / "fs"
    for folder, value in quotas.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(value + "\n")
    root.mkdir(exist_ok=True)
    return str(proc), str(root)


@pytest.mark.parametrize("own, quotas, expected", [
    ("/", {}, AFFINITY),  # no cpu.max: the affinity mask
    ("/", {".": "max 100000"}, AFFINITY),  # no quota
    ("/", {".": "100000 100000"}, 1),  # a container limited to one CPU
    ("/", {".": "150000 100000"}, min(2, AFFINITY)),  # 1.5 CPUs: rounded up
    ("/", {".": "1000 100000"}, 1),  # at least one
    ("/system.slice/krait.service", {"system.slice/krait.service": "100000 100000",
                                     "system.slice": "max 100000"}, 1),  # a unit's CPUQuota=100%
    ("/a/b", {"a": "50000 100000", "a/b": "max 100000"}, 1),  # a quota above the process's own cgroup
    ("/../outside", {".": "100000 100000"}, 1),  # outside this namespace's view: the root counts
    ("/", {".": "garbage"}, AFFINITY),  # unreadable: ignored
])
def test_usable_cpus(tmp_path, own, quotas, expected):
    assert usable_cpus(*cgroups(tmp_path, own, quotas)) == expected


def test_usable_cpus_without_cgroup_files(tmp_path):
    assert usable_cpus(str(tmp_path / "none"), str(tmp_path / "none-either")) == AFFINITY


@pytest.mark.parametrize("quota, period, expected", [
    ("-1", "100000", AFFINITY),  # v1 without a quota
    ("100000", "100000", 1),  # docker --cpus 1 on a cgroup v1 host
    ("150000", "100000", min(2, AFFINITY)),
])
def test_usable_cpus_cgroup_v1(tmp_path, quota, period, expected):
    # cgroup v1: the quota sits in the hierarchy named after the cpu controller (here joined with
    # cpuacct, as most distributions mount it), and a memory hierarchy line is ignored.
    proc = tmp_path / "cgroup"
    proc.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    folder = tmp_path / "fs" / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
    (folder / "cpu.cfs_period_us").write_text(period + "\n")
    assert usable_cpus(str(proc), str(tmp_path / "fs")) == expected


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin to one")
def test_both_worker_counts_follow_the_cpus_krait_may_use():
    # Pinned to one CPU (taskset -c 0), as a benchmark or a container's cpuset does.
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from krait.settings import Settings; s = Settings(site_root='.'); print(s.workers, s.ws_workers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.split() == ["1", "1"]
