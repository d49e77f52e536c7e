"""Hyperparameter sweeps with Optuna: ``lstmzoo sweep RECIPE --trials N --storage URL --param NAME=SPEC ...``.

Every process that runs the same command is a worker of the same study, kept in Optuna's storage: an SQLite file
or a journal file on one machine, a PostgreSQL or MySQL server across machines. A worker starts trials until the
study holds N finished (complete or pruned) trials, then reports the best one. Each trial is an ordinary run folder
(``trial-0007/`` under the sweep's folder) that ``lstmzoo evaluate`` and ``train --resume`` take.

- Trials report the recipe's ``monitor`` after every epoch; the pruner (``PRUNERS``: median by default, successive
  halving, or none) may stop a trial there.
  The objective is the monitor's best value; its direction is the recipe's ``mode``.
- Exactly N: on one machine a worker counts the finished and running trials and starts its trial under an OS lock
  beside the storage file, so two workers never take the last place together. Across machines (a server URL) two
  workers may each start a last trial at the same moment, and the study then ends with N + 1.
- A worker that dies (kill -9, a lost machine) leaves a running trial behind. A database storage notices through
  Optuna's heartbeat (a trial silent for two heartbeats); a journal file, which has none, through the worker's
  process id on this machine. Either way the trial is failed and its hyperparameters are tried once more, and the
  other workers wait for the running trials before they give up on reaching N.
- A trial that diverges, or whose sampled values the recipe refuses (a forecasting horizon too long for the data),
  fails with its sentence and the sweep goes on; a sweep whose study holds N failed trials stops.

``optuna`` comes with the ``sweep`` extra; the CLI imports this module only inside the ``sweep`` command.
"""

import dataclasses
import os
import random
import shlex
import socket
import time
import warnings
from collections import Counter
from pathlib import Path

from .errors import UserError
from .train import TrainingError

try:
    import optuna
except ModuleNotFoundError:
    raise ImportError("lstmzoo sweep needs Optuna: pip install 'lstmzoo[sweep]'", name="optuna") from None
from optuna.trial import TrialState

# A stale trial is tried once more (as a new trial with the same hyperparameters): a trial that kills its worker
# every time (memory) is not tried forever. Optuna 4.9 renamed the callback and its keyword.
if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
    _RETRY_KEYWORD, _Retry = "heartbeat_stale_trial_callback", optuna.storages.RetryHeartbeatStaleTrialCallback
else:   # pragma: no cover - optuna < 4.9
    _RETRY_KEYWORD, _Retry = "failed_trial_callback", optuna.storages.RetryFailedTrialCallback

# How a trial is stopped early, given the epochs it may run. Both pruners wait for a tenth of them: the first
# epochs of an LSTM say little about its last (airline-passengers, 20 trials: 7 of 12 pruned after epoch 1). The
# median pruner stops a trial below the median of the earlier trials at the same epoch (after 5 trials); successive
# halving (asynchronous, as Optuna has it) compares a trial at its rungs, a tenth of the epochs and then 4x as
# many each time, with the trials that reached the same rung, and keeps it only in their best quarter (the best
# one while fewer than 8 reached it). Optuna's own first rung ("auto": a hundredth of the first complete trial's
# epochs, at least 1) would judge at epoch 1, and the trials that ran before one completed would never compete.
PRUNERS = {"median": lambda epochs: optuna.pruners.MedianPruner(n_warmup_steps=epochs // 10),
           "halving": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=max(epochs // 10, 1)),
           "none": lambda epochs: optuna.pruners.NopPruner()}
STORAGE_FORMS = ("sqlite:///FILE.db, journal:FILE (or FILE.log), or a postgresql:// or mysql:// URL")
# The package that brings each SQLAlchemy driver (postgresql:// means psycopg 3 from SQLAlchemy 2.1 on, psycopg2
# before; mysql:// means mysqlclient).
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "mysqldb": "mysqlclient",
                   "pymysql": "pymysql"}
SWEEP_FILE = "sweep.json"           # in the sweep folder: which study its trial folders belong to
POLL_SECONDS = 1.0                  # how often a worker waiting for the others' last trials looks again


class SweepError(Exception):
    """The sweep cannot go on, and not through a mistake in the command (a storage that cannot be reached, a
    study whose trials keep failing); one sentence."""


# ------------------------------------------------------------------------------------------------ the search
@dataclasses.dataclass(frozen=True)
class SearchParameter:
    """One ``--param NAME=SPEC``: ``kind`` is "int", "float" or "choice"; ``low``/``high``/``log`` bound a
    number, ``choices`` holds the typed values of a choice."""
    name: str
    kind: str
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.name, self.choices)

    def spec(self):
        """The SPEC in a canonical form (1e-4 and 0.0001 alike): what a study records of its command."""
        if self.kind == "choice":
            return "choice:" + ",".join(_text(value) for value in self.choices)
        return f"{self.kind}:{self.low!r}:{self.high!r}{':log' if self.log else ''}"


def parse_parameter(text, recipe):
    """The ``SearchParameter`` of ``--param NAME=SPEC`` for ``recipe``: SPEC is ``int:LOW:HIGH``,
    ``float:LOW:HIGH`` (either with ``:log``) or ``choice:A,B,C``, and every value it allows must pass the
    recipe's own checks (type, bounds, choices). UserError, one sentence, otherwise."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    usage = "int:LOW:HIGH, float:LOW:HIGH (either with :log) or choice:A,B,C"
    if not sep or not name or not spec.strip():
        raise UserError(f"--param takes NAME=SPEC with SPEC one of {usage}, got {text!r}")
    declared = recipe.all_hyperparameters()
    if name not in declared:
        raise UserError(f"recipe {recipe.name!r} has no hyperparameter {name!r}; it has {', '.join(sorted(declared))}")
    hyperparameter = declared[name]
    kind, _, rest = spec.strip().partition(":")
    if kind == "choice":
        values = [value.strip() for value in rest.split(",")]
        if not rest.strip() or not all(values):
            raise UserError(f"--param {name}={spec} names no choices or an empty one: give choice:A,B,C")
        choices = tuple(hyperparameter.parse(name, value) for value in values)
        if len(set(choices)) != len(choices):
            raise UserError(f"--param {name}={spec} names a choice twice")
        return SearchParameter(name, "choice", choices=choices)
    if kind not in ("int", "float"):
        raise UserError(f"--param {name}={spec}: SPEC must be one of {usage}")
    if hyperparameter.type.__name__ != kind:
        wanted = "choice:A,B" if hyperparameter.type in (bool, str) else f"{hyperparameter.type.__name__}:LOW:HIGH"
        raise UserError(f"hyperparameter {name!r} is of type {hyperparameter.type.__name__}: search it with "
                        f"{wanted}, not {kind}:LOW:HIGH")
    bounds = rest.split(":")
    log = len(bounds) == 3 and bounds[2] == "log"
    if len(bounds) != (3 if log else 2):
        raise UserError(f"--param {name}={spec}: SPEC must be {kind}:LOW:HIGH or {kind}:LOW:HIGH:log")
    low, high = (hyperparameter.parse(name, bound.strip()) for bound in bounds[:2])
    if low > high:
        raise UserError(f"--param {name}={spec}: LOW must not be above HIGH")
    if log and low <= 0:
        raise UserError(f"--param {name}={spec}: a :log range must start above 0")
    return SearchParameter(name, kind, low, high, log)


def _text(value):
    """A hyperparameter's value as ``--set`` reads it back exactly (a float's repr round-trips)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@dataclasses.dataclass
class Plan:
    """What every trial of a sweep shares: the recipe, the fixed overrides (``--set``, ``--epochs``, ``--seed``,
    ``--device``, ``--data``: name -> value or ``--set`` text) and the searched parameters."""
    recipe: object
    fixed: dict
    parameters: list

    def hyperparameters(self, values):
        return self.recipe.resolve({**self.fixed, **values})

    def command(self):
        """What a study records of the command that started it; another command may not join it."""
        return {"recipe": self.recipe.name, "fixed": {name: _text(value) for name, value in sorted(self.fixed.items())},
                "parameters": {p.name: p.spec() for p in self.parameters}}

    def retrain_command(self, values):
        """The ``lstmzoo train`` command that trains the trial of ``values`` again, exactly."""
        options = {"data": "--data", "test_data": "--test-data", "epochs": "--epochs", "seed": "--seed",
                   "device": "--device"}
        words = ["lstmzoo", "train", self.recipe.name]
        settings = {**self.fixed, **values}
        for name, option in options.items():
            if name in settings:
                words += [option, _text(settings.pop(name))]
        for name, value in settings.items():
            words += ["--set", f"{name}={_text(value)}"]
        return shlex.join(words)


def plan(recipe, fixed, specs):
    """The ``Plan`` of a sweep, checked before any storage is touched: each ``--param`` (UserError for a bad SPEC,
    an undeclared name, a value out of the recipe's bounds, a name also fixed by ``--set``), the fixed values, and
    a task's data file (read once here: a bad file is refused before the study exists)."""
    if not specs:
        raise UserError("a sweep searches at least one hyperparameter: give --param NAME=SPEC")
    parameters = [parse_parameter(spec, recipe) for spec in specs]
    names = [p.name for p in parameters]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"--param {name} is given twice: search each hyperparameter with one SPEC")
        if name in fixed:
            raise UserError(f"{name} is both searched (--param) and fixed (--set, --epochs, --seed or --device): "
                            f"give it one way")
    if not _takes_keyword(recipe.train, "on_epoch_end"):
        raise SweepError(f"recipe {recipe.name!r} cannot be swept: its train() does not take on_epoch_end, through "
                         f"which a trial reports its epochs")
    swept = Plan(recipe, dict(fixed), parameters)
    for p in parameters:     # the extremes of each range reach the recipe's checks now, not in trial 37
        for value in ((p.low, p.high) if p.kind != "choice" else p.choices):
            swept.hyperparameters({p.name: value})
    recipe.settle(swept.hyperparameters({}))
    return swept


def _takes_keyword(function, name):
    """Whether ``function`` accepts the keyword argument ``name`` (by name, or through ``**options``)."""
    import inspect
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


# ------------------------------------------------------------------------------------------------ the storage
class WorkersLock:
    """An OS lock on a file beside a storage file (``FILE.sweep-lock``), which the OS releases however the
    process ends; for a server storage (``path`` None) it does nothing. ``release`` may be called more than
    once: the objective lets the lock go as soon as its trial exists."""

    def __init__(self, path):
        self.path = path
        self._fd = None

    def acquire(self):
        if self.path is None:
            return
        fd = os.open(f"{self.path}.sweep-lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            _lock_file(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


if os.name == "nt":     # pragma: no cover - the tests run on POSIX
    import msvcrt

    def _lock_file(fd):
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)   # gives up after 10 s of trying: then try again
                return
            except OSError:
                continue
else:
    import fcntl

    def _lock_file(fd):
        fcntl.flock(fd, fcntl.LOCK_EX)


@dataclasses.dataclass
class Storage:
    """An Optuna storage and, for one on this machine, the file it lives in (the workers' lock sits beside it)."""
    storage: object
    url: str            # as the user gave it (for messages)
    identity: str       # the same for every spelling of the same storage, without a password
    path: Path | None   # the SQLite or journal file; None for a server

    def __post_init__(self):
        self.lock = WorkersLock(self.path)


def open_storage(url, heartbeat):
    """The ``Storage`` of ``--storage URL``: ``journal:PATH`` or ``PATH.log`` (Optuna's journal file),
    ``sqlite:///PATH``, or a PostgreSQL or MySQL URL passed to Optuna; database storages send a heartbeat every
    ``heartbeat`` seconds while a trial runs. UserError, one sentence, for any other URL."""
    if url.startswith("journal:") or ("://" not in url and url.endswith(".log")):
        path = Path(url.removeprefix("journal:")).expanduser().absolute()
        if not path.name or path.is_dir():
            raise UserError(f"--storage {url} names no journal file")
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return Storage(optuna.storages.journal.JournalStorage(backend), url, f"journal:{path}", path)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"--storage takes {STORAGE_FORMS}, got {url!r}") from None
    backend = parsed.get_backend_name()
    path, engine = None, {}
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise UserError(f"--storage {url} is a database in memory, which no other worker can join: name a "
                            f"file, sqlite:///FILE.db")
        path = Path(parsed.database).expanduser().absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}  # workers wait for each other's writes instead of failing
        parsed = parsed.set(database=str(path))
    elif backend not in ("postgresql", "mysql"):
        raise UserError(f"--storage takes {STORAGE_FORMS}, got {url!r}")
    with warnings.catch_warnings():     # the heartbeat and the retry callback are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = _retried(lambda: optuna.storages.RDBStorage(
                parsed.render_as_string(hide_password=False), engine_kwargs=engine, heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat, **{_RETRY_KEYWORD: _Retry(max_retry=1)}))
        except ImportError:
            driver = parsed.get_dialect().driver
            package = DRIVER_PACKAGES.get(driver, driver)
            raise UserError(f"--storage {url} needs the database driver {driver}, which is not installed: pip install "
                            f"{shlex.quote(package)}") from None
    return Storage(storage, url, parsed.render_as_string(hide_password=True), path)


def _retried(create, attempts=8):
    """``create()``, tried again after a short random pause when workers starting together collide: Optuna's
    first use of a fresh database (its tables, its version row, the study's row) races between processes."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
    for attempt in range(attempts):
        try:
            return create()
        except (IntegrityError, OperationalError, ProgrammingError, optuna.exceptions.StorageInternalError,
                optuna.exceptions.DuplicatedStudyError) as error:
            if attempt == attempts - 1:
                raise SweepError(f"cannot open the study's storage: {str(error).splitlines()[0]}") from None
            time.sleep(random.uniform(0.05, 0.5))


def open_study(storage, name, plan, out, pruner="median"):
    """The study ``name`` in ``storage``, created unless it exists; its direction is the recipe's ``mode``, its
    sampler TPE (with a "constant liar": workers sampling at the same time do not all pick the same region).
    UserError when it was started by another command, or when ``out`` holds the trials of another study."""
    recipe = plan.recipe
    direction = "minimize" if recipe.mode == "min" else "maximize"
    study = _retried(lambda: optuna.create_study(
        storage=storage.storage, study_name=name, direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(constant_liar=True),
        pruner=PRUNERS[pruner](plan.hyperparameters({})["epochs"])))
    command = plan.command()
    recorded = study.user_attrs.get("command")
    if recorded is None:
        study.set_user_attr("command", command)
    elif recorded != command or study.direction.name.lower() != direction:
        raise UserError(f"study {name!r} in {storage.url} was started by another sweep ({_describe(recorded)}); "
                        f"run that command to join it, or give this one another --study")
    out.mkdir(parents=True, exist_ok=True)
    claim = {"storage": storage.identity, "study": name}
    marker = out / SWEEP_FILE
    from .checkpoint import read_json, write_json
    if marker.is_file() and read_json(marker) != claim:
        raise UserError(f"{out} holds the trials of another sweep (see {marker}): choose another --out")
    write_json(marker, claim)
    return study


def _describe(command):
    words = [command.get("recipe", "?")] + [f"--param {n}={s}" for n, s in command.get("parameters", {}).items()]
    return " ".join(words + [f"--set {n}={v}" for n, v in command.get("fixed", {}).items()])


# ------------------------------------------------------------------------------------------------ the workers
def run(plan, *, trials, storage, study_name, out, pruner="median", say=print):
    """Work on the study until it holds ``trials`` finished trials; returns the study. ``say`` gets one line
    per trial started and ended."""
    out = Path(out)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the trials' lines are ours, without tracebacks
    try:
        study = open_study(storage, study_name, plan, out, pruner)
        waiting = False
        while True:
            storage.lock.acquire()
            try:
                _fail_abandoned_trials(study, storage)
                counts = Counter(t.state for t in study.get_trials(deepcopy=False))
                finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
                if finished >= trials:
                    return study
                if counts[TrialState.FAIL] >= trials:
                    raise SweepError(_failures(study, trials))
                # The running trials of the other workers may still fail: wait for them rather than stop short.
                start = finished + counts[TrialState.RUNNING] < trials
                if not start and not waiting:
                    say(f"waiting for the other workers' {counts[TrialState.RUNNING]} running trials")
                waiting = not start
                if start:   # the trial is created under the lock; the objective releases it once the trial runs
                    study.optimize(_objective(plan, out, say, storage.lock.release), n_trials=1,
                                   catch=(TrainingError, UserError))
            finally:
                storage.lock.release()
            if not start:
                time.sleep(POLL_SECONDS)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _objective(plan, out, say, started):
    recipe = plan.recipe

    def objective(trial):
        started()
        # A retried trial inherits the user attributes of the one whose worker died.
        earlier = trial.user_attrs.get("run_dir")
        run_dir = out / f"trial-{trial.number:04d}"
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("run_dir", str(run_dir))
        values = {p.name: p.suggest(trial) for p in plan.parameters}
        again = f" (again the values of {earlier}, whose worker stopped)" if earlier else ""
        say(f"trial {trial.number}{again}: {_settings(values)} -> {run_dir}")

        def report(row):
            trial.report(row[recipe.monitor], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} ({recipe.monitor} "
                                         f"{row[recipe.monitor]:.4g})")

        try:
            trained = recipe.train(plan.hyperparameters(values), run_dir, progress=False, on_epoch_end=report)
        except optuna.TrialPruned as pruned:
            say(f"trial {trial.number} {pruned}")
            raise
        except (TrainingError, UserError) as error:
            trial.set_user_attr("failure", str(error))
            say(f"trial {trial.number} failed: {error}")
            raise
        result = trained.result
        trial.set_user_attr("best_epoch", result.best_epoch)
        say(f"trial {trial.number}: {recipe.monitor} {result.best_metric:.4g} (epoch {result.best_epoch} of "
            f"{result.epochs_run})")
        return result.best_metric

    return objective


def _settings(values):
    return " ".join(f"{name}={_text(value)}" for name, value in values.items())


def _fail_abandoned_trials(study, storage):
    """Fail the running trials whose worker is gone, and queue their hyperparameters once more: through the
    heartbeat in a database; in a journal file, which has none, when the worker was a process of this machine
    that no longer exists."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if isinstance(storage.storage, optuna.storages.RDBStorage):
            optuna.storages.fail_stale_trials(study)
            return
        retry = _Retry(max_retry=1)
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = trial.user_attrs.get("worker", "").rpartition(":")
            if worker_host == host and pid.isdigit() and not _process_exists(int(pid)):
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                retry(study, trial)


def _process_exists(pid):
    if os.name == "nt":     # pragma: no cover - os.kill would stop the process there; it is left running
        return True
    try:
        os.kill(pid, 0)     # signal 0: nothing is sent, only whether the process exists is checked
    except ProcessLookupError:
        return False
    except PermissionError:     # another user's process
        return True
    return True


def _failures(study, trials):
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]
    reason = failed[-1].user_attrs.get("failure", "its worker stopped")
    return (f"the study {study.study_name!r} holds {len(failed)} failed trials, as many as --trials asks to finish, "
            f"so something fails every time; the last one: {reason}")


# ------------------------------------------------------------------------------------------------ the report
def report(study, plan, storage, out):
    """The lines that end a sweep: the counts, the best trial, its hyperparameters, the command that trains it
    again, and the plots (drawn into ``out`` when matplotlib is there)."""
    counts = Counter(t.state for t in study.get_trials(deepcopy=False))
    lines = [(f"study {study.study_name!r} in {storage.url}: {counts[TrialState.COMPLETE]} complete, "
              f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed trials")]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return lines + ["no trial completed, so there is no best trial"]
    best = study.best_trial
    monitor = plan.recipe.monitor
    values = {p.name: best.params[p.name] for p in plan.parameters}
    width = max(map(len, values))
    run_dir = best.user_attrs.get("run_dir")    # None for a trial added to the study by other means than a sweep
    where = f" (epoch {best.user_attrs['best_epoch']}) in {run_dir}" if run_dir else ""
    lines += [f"best trial {best.number}: {monitor} {best.value:.6g}{where}"]
    lines += [f"  {name:<{width}}  {_text(value)}" for name, value in values.items()]
    lines += ["train it again:", f"  {plan.retrain_command(values)}"]
    if run_dir:
        lines += ["its test metrics:", f"  lstmzoo evaluate {plan.recipe.name} --checkpoint {shlex.quote(run_dir)}"]
    drawn = [path for path in (_draw_history(study, monitor, out / "optimisation-history.png"),
                               _draw_importance(study, out / "parameter-importance.png")) if path]
    if drawn:
        lines.append("plots: " + ", ".join(map(str, drawn)))
    return lines


def _draw_history(study, monitor, path):
    from .plots import draw_figure
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    better = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max

    def draw(figure):
        from matplotlib.ticker import MaxNLocator
        ax = figure.subplots()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        numbers = [t.number for t in complete]
        ax.plot(numbers, [t.value for t in complete], "o", label="complete")
        best_so_far = [better(t.value for t in complete[:k + 1]) for k in range(len(complete))]
        ax.step(numbers, best_so_far, where="post", label="best so far")
        if pruned:
            ax.plot([t.number for t in pruned], [t.intermediate_values[t.last_step] for t in pruned], "x",
                    color="grey", label="pruned (last epoch's value)")
        ax.set_xlabel("trial")
        ax.set_ylabel(monitor)
        ax.set_title(f"study {study.study_name}")
        ax.grid(alpha=0.3)
        ax.legend()

    return draw_figure(path, draw, figsize=(6, 3.5))


def _draw_importance(study, path):
    """Optuna's parameter importances (over the complete trials) as bars; None with fewer than two trials."""
    from .plots import draw_figure
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return None
    with warnings.catch_warnings():     # few or equal trials: the bars say it (equal importances) already
        warnings.simplefilter("ignore", UserWarning)
        importances = optuna.importance.get_param_importances(study)

    def draw(figure):
        ax = figure.subplots()
        names = list(importances)[::-1]
        ax.barh(names, [importances[name] for name in names])
        ax.set_xlabel("importance (Optuna's default evaluator; the bars sum to 1)")
        ax.grid(alpha=0.3, axis="x")

    return draw_figure(path, draw, figsize=(6, 1 + 0.4 * len(importances)))
