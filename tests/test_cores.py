"""The cores a process computes on (cores.py): its threads, CPUs, quota and BLAS environment
variables, its share among the charrnn processes of the host, and OpenBLAS's threads set to it.
Every CPU count here is made on purpose, whatever this machine has."""

import json
import os
import signal
import subprocess
import sys

import pytest

from charrnn import cores
from charrnn.cores import CoreShare, Registration, deal


@pytest.mark.parametrize("cores_, wants, got", [
    (2, [2, 2, 2, 2], [1, 1, 1, 1]),       # more peers than cores: one each
    (2, [2], [2]),
    (4, [2, 2], [2, 2]),
    (8, [2, 2], [2, 2]),                   # nobody takes more than it wants
    (3, [1, 4], [1, 2]),
    (5, [4, 4], [3, 2]),                   # the first in order gets the odd core
    (3, [2, 2, 2, 2, 2], [1, 1, 1, 1, 1]),
])
def test_cores_are_dealt_in_turn(cores_, wants, got):
    assert deal(cores_, wants) == got


def test_the_limit_is_the_fewest_of_threads_cpus_quota_and_blas_variables(monkeypatch, tmp_path):
    monkeypatch.setattr(cores, "affinity", lambda: (0, 1, 2, 3))
    monkeypatch.setattr(cores, "cgroup_quota", lambda: None)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert cores.cpu_limit(2) == 2 and cores.cpu_limit(8) == 4
    monkeypatch.setattr(cores, "affinity", lambda: (3,))          # taskset -c 3
    assert cores.cpu_limit(2) == 1
    monkeypatch.setattr(cores, "affinity", lambda: (0, 1, 2, 3))
    monkeypatch.setattr(cores, "cgroup_quota", lambda: 3)         # docker --cpus 2.5
    assert cores.cpu_limit(8) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cores.cpu_limit(8) == 2
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")                # wins over OMP_NUM_THREADS
    assert cores.cpu_limit(8) == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "many")             # not a count: ignored
    assert cores.cpu_limit(8) == 2


@pytest.mark.parametrize("text, quota", [("max 100000\n", None), ("250000 100000\n", 3),
                                         ("50000 100000\n", 1), ("garbage\n", None)])
def test_cgroup_quota_is_read_from_cpu_max(tmp_path, text, quota):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert cores.cgroup_quota(path) == quota
    assert cores.cgroup_quota(tmp_path / "missing") is None


def test_processes_in_one_registry_share_the_cpus(cpus, monkeypatch):
    cpus(2)
    monkeypatch.setattr(cores, "RECHECK_SECONDS", 0.0)
    with CoreShare(2) as a:
        assert a.cores() == 2
        with CoreShare(2) as b, CoreShare(1) as c:
            assert (a.cores(), b.cores(), c.cores()) == (1, 1, 1)
        assert a.cores() == 2                   # the others ended: both cores again
    with CoreShare(1) as one:
        assert one.cores() == 1                 # threads 1: one core, whatever is free


def test_the_share_is_looked_at_again_at_most_every_second(cpus, monkeypatch):
    cpus(2)
    clock = {"now": 100.0}
    monkeypatch.setattr(cores.time, "monotonic", lambda: clock["now"])
    with CoreShare(2) as a:
        assert a.cores() == 2
        with CoreShare(2):
            assert a.cores() == 2               # looked at less than a second ago
            clock["now"] += cores.RECHECK_SECONDS
            assert a.cores() == 1


def test_files_of_dead_peers_are_removed_and_other_hosts_ignored(cpus, monkeypatch):
    cpus(2)
    monkeypatch.setattr(cores, "RECHECK_SECONDS", 0.0)
    directory = cores.peers_dir()
    directory.mkdir(parents=True, exist_ok=True)
    me = Registration(2, (0, 1))
    stale = directory / f"{me.host}.999999999.deadbeef"     # nobody holds its lock
    stale.write_text(json.dumps({"wanted": 2, "cpus": [0, 1]}))
    other_host = directory / "another-host.123.cafe0000"
    other_host.write_text(json.dumps({"wanted": 2, "cpus": [0, 1]}))
    assert me.peers() == [(me.name, 2)]
    assert not stale.exists() and other_host.exists()
    elsewhere = Registration(2, (5, 6))          # on CPUs this one never runs on
    assert me.peers() == [(me.name, 2)]
    elsewhere.close()
    me.close()
    assert sorted(p.name for p in directory.iterdir()) == [other_host.name]


def test_a_peer_in_another_process_counts_until_it_is_killed(cpus, monkeypatch, tmp_path):
    """A real second process registers in the same directory: this one's share halves; once it
    is killed (no chance to clean up) the share is whole again and its file is gone."""
    cpus(2)
    monkeypatch.setattr(cores, "RECHECK_SECONDS", 0.0)
    directory = cores.peers_dir()
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from charrnn import cores; "
         "r = cores.Registration(2, cores.affinity(), sys.argv[1]); "
         "print('ready', flush=True); time.sleep(120)", str(directory)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        with CoreShare(2) as share:
            assert share.cores() == 1
            child.send_signal(signal.SIGKILL)
            child.wait()
            assert share.cores() == 2
        assert list(directory.iterdir()) == []
    finally:
        child.kill()
        child.communicate()


def test_blas_threads_are_the_cores_and_one_with_threads_1(cpus, monkeypatch):
    from charrnn.parallel import Shards

    if cores.blas_threads() is None:
        pytest.skip("no OpenBLAS thread setting here")
    cpus(2)
    monkeypatch.setattr(cores, "RECHECK_SECONDS", 0.0)
    before = cores.blas_threads()
    with Shards(1):
        assert cores.blas_threads() == 1        # threads: the cores a run uses, BLAS included
    with Shards(2) as shards:
        assert cores.blas_threads() == 2 and shards.cores == 2 and shards.parallel
        with Shards(2) as other:                 # a second run: the two share the cores
            assert other.cores == 1 and not other.parallel
            assert shards.update() == 1 and cores.blas_threads() == 1 and not shards.parallel
        assert shards.update() == 2 and cores.blas_threads() == 2
    assert cores.blas_threads() == before


def test_an_unwritable_registry_means_no_peers(cpus, monkeypatch, tmp_path):
    cpus(2)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(cores, "peers_dir", lambda: blocker / "peers")
    with CoreShare(2) as share:
        assert share.cores() == 2 and share.registration.fd is None
    assert os.path.isfile(blocker)
