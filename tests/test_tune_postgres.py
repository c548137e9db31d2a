"""charrnn tune against a real PostgreSQL server (marker postgres): workers racing on one study
end with exactly N trials (the advisory lock), a killed worker's trial is failed by the next, a
silent worker on another host is failed by its heartbeat, and --show reads the study back.

The server is the one CHARRNN_TEST_POSTGRES names (postgresql://user@host:port/db): .ci/run
starts a throwaway one and sets it. Without it these tests skip; under CI=true they fail
instead, as they do when the server cannot be reached. No mocks: the storage is the server."""

import os
import signal
import time
import uuid

import pytest

import charrnn
from charrnn import search
from cli_helpers import assert_fails, invoke
from tune_helpers import FIXED, assert_exact_study, start_worker, study_workers, tune_args
from test_tune_workers import SLOW_TRIALS, _evaluated, _wait_for

pytestmark = pytest.mark.postgres


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}: .ci/run starts a server and sets "
                    "CHARRNN_TEST_POSTGRES")
    pytest.skip(f"{reason} (.ci/run starts a server and sets CHARRNN_TEST_POSTGRES)")


@pytest.fixture(scope="module")
def postgres():
    url = os.environ.get("CHARRNN_TEST_POSTGRES")
    if not url:
        _unavailable("CHARRNN_TEST_POSTGRES is not set")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg2")
    try:
        engine = sqlalchemy.create_engine(search.target(".", url).url,
                                          connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as e:
        _unavailable(f"the server at {search.target('.', url).shown} cannot be reached: "
                     f"{str(e.orig or e).splitlines()[0]}")
    return url


@pytest.fixture
def study():
    return f"test-{uuid.uuid4().hex[:12]}"         # a study of its own in the shared database


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_racing_on_postgres_end_with_exactly_n_trials(tmp_path, text, space, postgres,
                                                              study, workers):
    # each worker its own tune directory, as on machines of their own: the database is shared
    procs = [start_worker(tune_args(text, space, tmp_path / f"machine-{k}" / "t", 8,
                                    "--storage", postgres, "--study", study, "--json"))
             for k in range(workers)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * workers, [e for _, e in outputs]
    trials = []
    for k in range(workers):
        result = charrnn.tune_results(tmp_path / f"machine-{k}" / "t", storage=postgres,
                                      study=study)
        trials += [t for t in result.trials
                   if t["run_dir"].startswith(str(tmp_path / f"machine-{k}"))]
    assert sorted(t["number"] for t in trials) == list(range(8))
    assert len(result.trials) == 8 and result.counts()["FAIL"] == 0
    assert set(study_workers(result).values()) <= {p.pid for p in procs}


def test_on_one_machine_postgres_workers_share_a_tune_directory(tmp_path, text, space, postgres,
                                                                study):
    out = tmp_path / "t"
    procs = [start_worker(tune_args(text, space, out, 6, "--storage", postgres, "--study", study))
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    assert_exact_study(charrnn.tune_results(out, storage=postgres, study=study), 6,
                       [p.pid for p in procs])


def test_a_killed_workers_trial_on_postgres_is_failed_by_the_next(tmp_path, text, space,
                                                                   postgres, study):
    out = tmp_path / "t"
    args = tune_args(text, space, out, 3, "--storage", postgres, "--study", study, "--pruner",
                     "none", fixed=SLOW_TRIALS)
    doomed = start_worker(args)
    _wait_for(lambda: _evaluated(out / "trial-0000"))
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=30)
    survivor = start_worker(args)
    _, stderr = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, stderr
    result = charrnn.tune_results(out, storage=postgres, study=study)
    assert {t["number"]: t["state"] for t in result.trials} == {0: "FAIL", 1: "COMPLETE",
                                                                 2: "COMPLETE"}
    assert result.trials[-1]["reason"].startswith(f"its worker (process {doomed.pid} on ")


def test_a_silent_worker_on_another_host_is_failed_by_its_heartbeat(tmp_path, text, space,
                                                                      postgres, study,
                                                                      monkeypatch):
    import optuna

    monkeypatch.setattr(search, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(search, "GRACE_SECONDS", 2)
    args = dict(space=space, out=tmp_path / "t", storage=postgres, study=study,
                sets=FIXED)
    charrnn.tune(text, trials=1, **args)
    # a worker elsewhere takes trial 1, beats once, and goes silent (its machine died)
    storage = search.open_storage(search.target(tmp_path / "t", postgres, study))
    remote = optuna.load_study(study_name=study, storage=storage)
    with pytest.warns(UserWarning, match="Heartbeat of storage"):
        trial = remote.ask()
    trial.set_user_attr("worker", {"host": "elsewhere", "pid": 1, "dir": "/nowhere"})
    storage.record_heartbeat(trial._trial_id)
    alive = charrnn.tune(text, trials=2, **args)     # within its grace: still its trial
    assert {t["number"]: t["state"] for t in alive.trials} == {0: "COMPLETE", 1: "RUNNING"}
    time.sleep(2.5)
    result = charrnn.tune(text, trials=3, **args)
    assert {t["number"]: t["state"] for t in result.trials} == {0: "COMPLETE", 1: "FAIL",
                                                                 2: "COMPLETE"}


def test_show_reads_a_study_in_postgres(tmp_path, text, space, postgres, study):
    out = tmp_path / "t"
    charrnn.tune(text, trials=2, space=space, out=out, storage=postgres, study=study,
                 sets=FIXED)
    shown = invoke(["tune", "--show", out, "--storage", postgres, "--study", study],
                   catch_exceptions=False)
    assert shown.stdout.splitlines()[0].startswith(f"study '{study}' ({postgres}): 2 trials")
    assert_fails(invoke(["tune", "--show", out, "--storage", postgres, "--study", "no-" + study]),
                 1, f"Error: {postgres}: no study named 'no-{study}'; studies there: "
                    + ", ".join(optuna_names(postgres)) + "\n")


def optuna_names(url):
    import optuna

    return optuna.get_all_study_names(search.open_storage(search.target(".", url)))
