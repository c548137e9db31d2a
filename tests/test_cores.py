"""The cores a process computes on (cores.py): its threads (0: every core), CPUs, quota and BLAS
environment variables, its share among the charrnn processes of the host, and OpenBLAS's threads
set to it (each shard's part of the cores inside the shards, all of them outside). Every CPU count
here is made on purpose, whatever this machine has."""

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


def test_threads_0_is_every_core_the_process_may_use(monkeypatch):
    """threads 0: no cap of its own, only the CPUs, the quota and the BLAS variables."""
    monkeypatch.setattr(cores, "affinity", lambda: tuple(range(16)))
    monkeypatch.setattr(cores, "cgroup_quota", lambda: None)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert cores.cpu_limit(0) == 16 and cores.cpu_limit(1) == 1 and cores.cpu_limit(64) == 16
    monkeypatch.setattr(cores, "affinity", lambda: (2, 5))         # taskset -c 2,5
    assert cores.cpu_limit(0) == 2
    monkeypatch.setattr(cores, "affinity", lambda: tuple(range(16)))
    monkeypatch.setattr(cores, "cgroup_quota", lambda: 6)          # docker --cpus 5.5
    assert cores.cpu_limit(0) == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cores.cpu_limit(0) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cores, "RECHECK_SECONDS", 0.0)
    with CoreShare(0) as share:
        assert share.limit == 6 and share.cores() == 6
        with CoreShare(0) as other, CoreShare(1) as one:   # peers: the 6 are dealt in turn
            # (the odd core goes to the first by name, a random one here)
            assert sorted([share.cores(), other.cores()]) == [2, 3] and one.cores() == 1


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
    with Shards(2, threads=1) as one:
        assert cores.blas_threads() == 1 and not one.parallel   # threads: BLAS included
    with Shards(1) as whole:                     # one shard, every core: all of them to BLAS
        assert cores.blas_threads() == 2 and whole.cores == 2 and whole.pool is None
    with Shards(2) as shards:
        assert cores.blas_threads() == 2 and shards.cores == 2 and shards.parallel
        with Shards(2) as other:                 # a second run: the two share the cores
            assert other.cores == 1 and not other.parallel
            assert shards.update() == 1 and cores.blas_threads() == 1 and not shards.parallel
        assert shards.update() == 2 and cores.blas_threads() == 2
    assert cores.blas_threads() == before


@pytest.mark.parametrize("cpu_count, jobs, per_shard", [
    (16, 2, 8), (16, 3, 5), (2, 2, 1), (3, 2, 1), (1, 2, 1), (4, 8, 1), (8, 1, 8)])
def test_each_shard_gets_its_part_of_the_cores(cpus, cpu_count, jobs, per_shard):
    """More cores than shards: each shard's BLAS gets cores // shards running, not 1."""
    from charrnn.parallel import Shards

    cpus(cpu_count)
    with Shards(jobs) as shards:
        assert shards.cores == cpu_count and shards.blas_per_shard(jobs) == per_shard


def test_the_shards_blas_threads_are_their_part_and_the_callers_after(cpus):
    from charrnn import parallel
    from charrnn.parallel import Shards

    if parallel.blas_local_threads() is None or cores.blas_threads() is None:
        pytest.skip("no OpenBLAS thread settings here")
    cpus(4)
    before = cores.blas_threads()
    inside = []
    with Shards(2) as shards:
        assert shards.parallel and cores.blas_threads() == 4      # outside the shards: all 4
        shards.map([lambda: inside.append(cores.blas_threads())] * 2)
        assert inside == [2, 2] and cores.blas_threads() == 4
    assert cores.blas_threads() == before


def test_an_unwritable_registry_means_no_peers(cpus, monkeypatch, tmp_path):
    cpus(2)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(cores, "peers_dir", lambda: blocker / "peers")
    with CoreShare(2) as share:
        assert share.cores() == 2 and share.registration.fd is None
    assert os.path.isfile(blocker)


def _train_under_taskset(cpu_list, text, out, tmp_path):
    """`charrnn train` as a subprocess on the CPUs in cpu_list (taskset -c), with peers and a
    temporary directory of its own and no BLAS variables: its log (stderr)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env["TMPDIR"] = str(tmp_path)          # its own peers (cores.peers_dir): nobody else's runs
    proc = subprocess.run(
        ["taskset", "-c", ",".join(map(str, cpu_list)), sys.executable, "-m", "charrnn",
         "train", str(text), "--out", str(out), "--rng-seed", "3",
         "--set", "model=gru", "--set", "num_layers=1", "--set", "hidden_size=64",
         "--set", "dropout=0.1", "--set", "batch_size=128", "--set", "seq_length=8",
         "--set", "max_iters=3", "--set", "eval_every=3", "--set", "val_frac=0.1",
         "--set", "shards=2"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_the_bits_do_not_depend_on_the_cores(tmp_path):
    """The same run (two shards of 64 streams x 64 units, with dropout) on one CPU, where the
    shards run one after the other, and on two, where they run at once: the same weights,
    bit for bit (threads is 0, every core; only shards decides the numbers)."""
    import shutil

    import numpy as np

    from charrnn.checkpoint import load_checkpoint

    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    mine = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(mine) < 2:
        pytest.skip(f"this process may run on {len(mine) or 'an unknown number of'} CPU(s); "
                    "the test needs 2")
    text = tmp_path / "text.txt"
    words = np.random.default_rng(0).choice(["the ", "cat ", "sat\n", "on ", "a ", "mat. "], 8000)
    text.write_text("".join(words), encoding="utf-8")
    one_log = _train_under_taskset(mine[:1], text, tmp_path / "one", tmp_path)
    two_log = _train_under_taskset(mine[:2], text, tmp_path / "two", tmp_path)
    assert ("computing on 1 core (threads 0: every core); batch in 2 shards, one after another"
            in one_log.splitlines())
    assert f"computing on {min(2, cores.cgroup_quota() or 2)} core" in two_log
    a, b = (load_checkpoint(tmp_path / run / "last.npz") for run in ("one", "two"))
    assert a.train_cfg == b.train_cfg and (a.train_cfg.threads, a.train_cfg.shards) == (0, 2)
    metrics = [json.loads((tmp_path / run / "metrics.jsonl").read_text()) for run in ("one", "two")]
    assert metrics[0]["train_loss"] == metrics[1]["train_loss"]
    assert metrics[0]["val_loss"] == metrics[1]["val_loss"]
    assert a.iteration == b.iteration == 3 and sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
