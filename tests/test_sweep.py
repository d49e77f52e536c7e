"""``lstmzoo sweep``: Optuna studies in SQLite and journal files shared by worker processes, on airline-passengers
and on the forecasting task with tiny settings (run with NUMBA_NUM_THREADS=1: about a minute on one core)."""

import json
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed (pip install 'lstmzoo[sweep]')")
from optuna.trial import TrialState

TINY = ["--set", "hidden_size=4", "--epochs", "2"]
LR = "lr=float:0.001:0.01:log"


# A PostgreSQL database the tests may write to and empty (postgresql://USER@HOST:PORT/DB, with a driver: pip install
# 'psycopg[binary]'): the server storage's tests run only where it is given.
POSTGRES = os.environ.get("LSTMZOO_TEST_POSTGRES", "").strip()
SERVER = pytest.param("postgres", marks=pytest.mark.skipif(
    not POSTGRES, reason="no PostgreSQL to test with: set LSTMZOO_TEST_POSTGRES to the URL of a database the tests "
                         "may write to"))


def storage_url(kind, folder):
    if kind == "postgres":      # a fresh study each time: the server keeps the last test's
        from lstmzoo.sweep import open_storage
        storage = open_storage(POSTGRES, heartbeat=1).storage
        if "airline-passengers" in [summary.study_name for summary in optuna.get_all_study_summaries(storage)]:
            optuna.delete_study(study_name="airline-passengers", storage=storage)
        return POSTGRES
    return f"sqlite:///{folder / 'study.db'}" if kind == "sqlite" else f"journal:{folder / 'study.log'}"


def load(url, name="airline-passengers"):
    from lstmzoo.sweep import open_storage
    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=1).storage)


def states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


def sweep_args(url, out, trials, *extra, recipe="airline-passengers"):
    return ["sweep", recipe, "--trials", trials, "--storage", url, "--out", out, *extra]


def worker(url, out, trials, *extra):
    """A worker process, as a user starts one in another terminal."""
    command = [sys.executable, "-m", "lstmzoo", *sweep_args(url, out, trials, *extra)]
    return subprocess.Popen([str(word) for word in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})


def retrain_command(output):
    lines = output.splitlines()
    return shlex.split(lines[lines.index("train it again:") + 1])


# ------------------------------------------------------------------------------------------- a user's mistakes
@pytest.mark.parametrize(("arguments", "sentence"), [
    (["--param", "lr"], "--param takes NAME=SPEC"),
    (["--param", "lr=uniform:0.001:0.01"], "SPEC must be one of int:LOW:HIGH"),
    (["--param", "learning_rate=float:0.001:0.01"], "has no hyperparameter 'learning_rate'"),
    (["--param", "lr=float:0.01:0.001"], "LOW must not be above HIGH"),
    (["--param", "lr=float:0.001:20"], "'lr' must be between"),
    (["--param", "dropout=float:0:0.5:log"], "a :log range must start above 0"),
    (["--param", "hidden_size=float:2:8"], "search it with int:LOW:HIGH"),
    (["--param", "hidden_size=int:2"], "SPEC must be int:LOW:HIGH or int:LOW:HIGH:log"),
    (["--param", "device=choice:cpu,tpu"], "'device' must be one of"),
    (["--param", "batch_size=choice:4,4"], "names a choice twice"),
    (["--param", LR, "--param", "lr=float:0.002:0.003"], "--param lr is given twice"),
    (["--param", LR, "--set", "lr=0.002"], "lr is both searched (--param) and fixed"),
    ([], "searches at least one hyperparameter"),
])
def test_a_bad_search_is_one_sentence_before_anything_is_made(tmp_path, arguments, sentence):
    url = storage_url("sqlite", tmp_path)
    result = run(*sweep_args(url, tmp_path / "sweep", 1, *TINY, *arguments), code=2)
    assert sentence in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("url", "sentence"), [
    ("redis://localhost/0", "--storage takes sqlite:///FILE.db"),
    ("sqlite://", "a database in memory, which no other worker can join"),
    ("not a url", "--storage takes sqlite:///FILE.db"),
])
def test_a_storage_no_worker_can_share_is_one_sentence(tmp_path, url, sentence):
    result = run(*sweep_args(url, tmp_path / "sweep", 1, *TINY, "--param", LR), code=2)
    assert sentence in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("url", "package"), [("postgresql+psycopg://sweeper@db.invalid/sweeps", "'psycopg[binary]'"),
                                            ("postgresql+psycopg2://sweeper@db.invalid/sweeps", "psycopg2-binary")])
def test_a_server_storage_without_its_driver_says_which_package_brings_it(tmp_path, monkeypatch, url, package):
    driver = url.split("+")[1].split(":")[0]
    monkeypatch.setitem(sys.modules, driver, None)     # not installed, wherever the tests run
    result = run(*sweep_args(url, tmp_path / "sweep", 1, *TINY, "--param", LR), code=2)
    assert result.output.strip() == (f"Error: --storage {url} needs the database driver {driver}, which is not "
                                      f"installed: pip install {package}")


def test_without_optuna_the_sweep_says_how_to_get_it_and_list_never_imports_it(tmp_path):
    code = ("import sys\n"
            "from lstmzoo.cli import main\n"
            "main(['list'], standalone_mode=False)\n"
            "assert 'optuna' not in sys.modules, 'lstmzoo list imported optuna'\n"
            "sys.modules['optuna'] = None\n"
            f"main(['sweep', 'airline-passengers', '--trials', '1', '--storage', 'sqlite:///{tmp_path}/s.db', "
            f"'--param', '{LR}'])\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip() == "Error: lstmzoo sweep needs Optuna: pip install 'lstmzoo[sweep]'"


# ------------------------------------------------------------------------------------------------ the sweep
def test_a_sweep_finishes_n_trials_and_prints_the_command_that_retrains_its_best(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url, out = storage_url("sqlite", tmp_path), tmp_path / "sweep"
    arguments = sweep_args(url, out, 3, *TINY, "--param", LR, "--param", "batch_size=choice:4,8", "--pruner", "none")
    output = run(*arguments).stdout
    study = load(url)
    assert states(study) == [TrialState.COMPLETE] * 3
    assert "3 complete, 0 pruned, 0 failed trials" in output
    best = study.best_trial
    best_folder = out / f"trial-{best.number:04d}"
    # The epoch the trial kept: its best val_loss (the recipe keeps its best epoch, so not always the last).
    rows = [json.loads(line) for line in (best_folder / "metrics.jsonl").read_text().splitlines()]
    kept = min(rows, key=lambda row: row["val_loss"])["epoch"]
    assert f"best trial {best.number}: val_loss {best.value:.6g} (epoch {kept}) in {best_folder}" in output
    assert (out / "optimisation-history.png").is_file() and (out / "parameter-importance.png").is_file()

    # Each trial is a run folder whose best epoch is the trial's value; the printed command trains the best again,
    # exactly, and evaluate takes its folder.
    for trial in study.trials:
        rows = [json.loads(line) for line in (out / f"trial-{trial.number:04d}" / "metrics.jsonl").open()]
        assert min(row["val_loss"] for row in rows) == trial.value
    command = retrain_command(output)
    assert command[:3] == ["lstmzoo", "train", "airline-passengers"]
    assert f"lr={best.params['lr']!r}" in command and f"batch_size={best.params['batch_size']}" in command
    run(*command[1:], "--out", tmp_path / "retrained")
    retrained = [json.loads(line)["val_loss"] for line in (tmp_path / "retrained" / "metrics.jsonl").open()]
    assert retrained == [json.loads(line)["val_loss"] for line in (best_folder / "metrics.jsonl").open()]
    assert "rmse" in json.loads(run("evaluate", "airline-passengers", "--checkpoint", best_folder, "--json").stdout)

    # The same command again goes on where the study is: one more trial for --trials 4, none for 3.
    run(*arguments)
    assert len(load(url).trials) == 3
    run(*arguments[:3], 4, *arguments[4:])
    assert states(load(url)) == [TrialState.COMPLETE] * 4 and (out / "trial-0003" / "state.json").is_file()

    # Another search may not join the study, nor another study the folder.
    changed = run(*sweep_args(url, out, 4, *TINY, "--param", "lr=float:0.001:0.02:log"), code=2).output
    assert "study 'airline-passengers' in" in changed and "was started by another sweep" in changed
    elsewhere = run(*sweep_args(storage_url("journal", tmp_path), out, 1, *TINY, "--param", LR), code=2).output
    assert f"{out} holds the trials of another sweep" in elsewhere


@pytest.mark.parametrize("kind", ["sqlite", "journal", SERVER])
def test_workers_started_together_share_one_study_and_stop_at_n(tmp_path, kind):
    url, out = storage_url(kind, tmp_path), tmp_path / "sweep"
    workers = [worker(url, out, 4, *TINY, "--param", LR) for _ in range(2)]
    results = [process.communicate(timeout=240) for process in workers]
    for process, (_, stderr) in zip(workers, results):
        assert process.returncode == 0, stderr
    # Exactly N trials, however the two interleaved (which one ran what depends on their start-up times), and
    # both workers end on the same study's report. A server storage has no lock beside a file: two workers may
    # each start a last trial at the same moment (N + 1, as the sweep's docstring says).
    study = load(url)
    finished = len(study.trials)
    assert states(study) == [TrialState.COMPLETE] * finished and finished in ((4, 5) if kind == "postgres" else (4,))
    best = f"best trial {study.best_trial.number}: "
    assert all(best in stdout and f"{finished} complete, 0 pruned, 0 failed trials" in stdout
               for stdout, _ in results)


def _open_study_at_once(barrier, url, folder):
    """A worker's start, up to its study: an error ends the process with its traceback on stderr."""
    from lstmzoo.registry import get_recipe
    from lstmzoo.sweep import open_storage, open_study, plan
    swept = plan(get_recipe("airline-passengers"), {}, [LR])
    barrier.wait()
    open_study(open_storage(url, heartbeat=1), "airline-passengers", swept, folder)


def test_workers_creating_a_fresh_sqlite_study_at_the_same_moment_all_join_it(tmp_path):
    """Optuna's first use of a fresh SQLite file races between processes (its tables, its version row): measured
    failing in 7 of 8 rounds of two processes without the retries."""
    context = multiprocessing.get_context("fork")
    for round_ in range(4):
        url, out = storage_url("sqlite", tmp_path / str(round_)), tmp_path / str(round_) / "sweep"
        barrier = context.Barrier(3)
        processes = [context.Process(target=_open_study_at_once, args=(barrier, url, out))
                     for _ in range(3)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0, 0, 0]
        assert len(optuna.get_all_study_summaries(load(url)._storage)) == 1


def test_a_pruned_trial_leaves_a_run_folder_that_resumes(tmp_path):
    from lstmzoo.sweep import open_storage
    url, out = storage_url("journal", tmp_path), tmp_path / "sweep"
    # Five earlier trials that reached a validation loss of 0 at every epoch: the median pruner stops the next
    # trial after its first epoch, whose loss is above 0.
    study = optuna.create_study(study_name="airline-passengers", storage=open_storage(url, heartbeat=1).storage)
    distribution = optuna.distributions.FloatDistribution(0.001, 0.01, log=True)
    for _ in range(5):
        study.add_trial(optuna.trial.create_trial(params={"lr": 0.002}, distributions={"lr": distribution},
                                                  value=0.0, intermediate_values={1: 0.0, 2: 0.0}))
    output = run(*sweep_args(url, out, 6, *TINY, "--param", LR)).stdout
    pruned = load(url).trials[5]
    assert pruned.state == TrialState.PRUNED and pruned.last_step == 1
    assert "5 complete, 1 pruned, 0 failed trials" in output
    folder = out / "trial-0005"
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    run("train", "airline-passengers", "--out", folder, "--resume")
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("pruner", "kind", "third"), [
    ("halving", "sqlite", TrialState.PRUNED),
    ("halving", "journal", TrialState.PRUNED),
    ("median", "journal", TrialState.COMPLETE),   # it waits for 5 trials: the halving above is its own pruner
])
def test_successive_halving_prunes_a_trial_worse_at_its_first_rung(tmp_path, pruner, kind, third):
    """Three trials with queued values: lr 0.01 twice (val_loss 0.173 after epoch 1 of airline-passengers with
    these settings), then lr 0.001 (0.200). At the first rung (epoch 1 of 2) successive halving keeps only the
    best of fewer than 8 trials, so it stops the third; the median pruner lets it finish."""
    from lstmzoo.sweep import open_storage
    url, out = storage_url(kind, tmp_path), tmp_path / "sweep"
    study = optuna.create_study(study_name="airline-passengers", storage=open_storage(url, heartbeat=1).storage)
    for lr in (0.01, 0.01, 0.001):
        study.enqueue_trial({"lr": lr})
    output = run(*sweep_args(url, out, 3, *TINY, "--param", LR, "--pruner", pruner)).stdout
    trials = load(url).trials
    assert [t.params["lr"] for t in trials] == [0.01, 0.01, 0.001]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, third]
    assert trials[0].intermediate_values[1] < trials[2].intermediate_values[1]
    if third == TrialState.PRUNED:
        assert trials[2].last_step == 1 and "2 complete, 1 pruned, 0 failed trials" in output
        assert len((out / "trial-0002" / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_sweep_of_the_forecasting_task_on_a_users_file(tmp_path, monkeypatch):
    import numpy as np
    monkeypatch.chdir(tmp_path)
    months = np.arange(72)
    values = 100 + months + 10 * np.sin(2 * np.pi * months / 12)
    lines = ["ds,y"] + [f"{1990 + m // 12}-{m % 12 + 1:02d}-01,{v:.3f}" for m, v in zip(months, values)]
    Path("sales.csv").write_text("\n".join(lines) + "\n")
    url, out = storage_url("journal", tmp_path), Path("sweep")
    tiny = ["--data", "sales.csv", "--set", "hidden_size=4", "--set", "windows_per_epoch=32", "--epochs", "2"]
    output = run(*sweep_args(url, out, 2, *tiny, "--param", LR, recipe="forecasting")).stdout
    study = load(url, "forecasting")
    assert states(study) == [TrialState.COMPLETE] * 2
    command = retrain_command(output)
    assert command[3:5] == ["--data", "sales.csv"]
    run(*command[1:], "--out", "retrained")
    best = out / f"trial-{study.best_trial.number:04d}"
    assert (json.loads(Path("retrained/metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
            == json.loads((best / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"])
    assert "mase" in json.loads(run("evaluate", "forecasting", "--checkpoint", best, "--json").stdout)

    # A searched value the task refuses fails its trial with the task's sentence; when every trial fails, the
    # sweep stops once the study holds --trials failed ones.
    refused = run(*sweep_args(url, "long", 2, *tiny, "--param", "horizon=int:40:60", "--study", "long",
                              recipe="forecasting"), code=1).output
    assert "trial 0 failed: " in refused and "set a shorter horizon" in refused
    assert "holds 2 failed trials, as many as --trials asks to finish" in refused.splitlines()[-1]


@pytest.mark.parametrize("kind", ["sqlite", "journal", SERVER])
def test_a_worker_killed_in_a_trial_fails_it_and_another_worker_finishes_the_study(tmp_path, kind):
    url, out = storage_url(kind, tmp_path), tmp_path / "sweep"
    arguments = (url, out, 2, *TINY, "--param", LR, "--heartbeat", 1)
    killed = worker(*arguments)
    # The first trial's config.json is written as its training starts, and a fresh process's first epoch takes
    # most of a second (the kernels load from Numba's cache): the kill lands inside that trial.
    started = out / "trial-0000" / "config.json"
    deadline = time.monotonic() + 120
    while not started.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    first = load(url).trials[0]
    assert first.state == TrialState.RUNNING, "the kill came after the first trial"

    output = run(*sweep_args(*arguments)).output
    study = load(url)
    assert study.trials[0].state == TrialState.FAIL
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 2 and len(study.trials) == 3
    assert first.params in [t.params for t in finished]     # its values were tried once more
    assert f"(again the values of {out / 'trial-0000'}, whose worker stopped)" in output


def test_a_recipe_that_passes_train_options_through_can_be_swept():
    """rt-polarity's own train (it sets vocab_size from the data) takes **options: the sweep's on_epoch_end reaches Recipe.train."""
    from lstmzoo.registry import get_recipe
    from lstmzoo.sweep import plan
    swept = plan(get_recipe("rt-polarity"), {}, ["lr=float:1e-4:1e-2:log"])
    assert swept.hyperparameters({"lr": 0.001})["lr"] == 0.001
