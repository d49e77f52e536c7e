"""The ``lstmzoo`` command: list, inspect, download, train, evaluate and run the zoo's recipes (``generate``
samples text from a language model).

Start-up stays light (click, importlib.metadata and the recipes' metadata modules): the layers, Numba and
matplotlib are imported only by the commands that compute something, so ``lstmzoo list`` answers at once.

A user's mistake (an unknown recipe, a bad option value, a missing or damaged checkpoint, the checkpoint
of another recipe, an unreadable input file) ends as one sentence on stderr with exit status 2.
"""

import contextlib
import datetime
import inspect
import json
import math
import os
import re
import sys
from pathlib import Path

import click

from . import __version__
from .recipe import APPLICATIONS
from .registry import UnknownRecipeError, get_recipe, list_recipes, plugin_failures, plugin_report

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 110}


class UserError(click.ClickException):
    """A mistake in what the user asked for: one sentence, exit status 2 (click's usage-error status)."""
    exit_code = 2


DEBUG_VARIABLE = "LSTMZOO_DEBUG"


@contextlib.contextmanager
def _reported():
    """Turn the library's one-sentence errors into the CLI's: the user's mistakes (``lstmzoo.errors.UserError``:
    bad values, unusable run folders, unreadable inputs) exit 2; failures the user did not cause but cannot be
    blamed on the code (no network, a diverging loss, a plugin breaking the recipe contract) exit 1. Anything
    else is left to ``LstmzooGroup.invoke``, which reports it as a bug. Imported here, not at the top, to keep
    start-up light."""
    from .data import DataError
    from .errors import RecipeError
    from .errors import UserError as LibraryUserError
    from .train import TrainingError
    try:
        yield
    except LibraryUserError as error:
        raise UserError(_sentence(error)) from None
    except (DataError, TrainingError, RecipeError) as error:
        raise click.ClickException(_sentence(error)) from None


class LstmzooGroup(click.Group):
    """The command group: every command's errors go through ``_reported``; an exception that is not one of
    those is a bug, said so in one line with where to report it, the traceback shown only with ``--debug``."""

    def invoke(self, ctx):
        try:
            with _reported():
                return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(_bug_report(ctx, error)) from None


def _bug_report(ctx, error):
    """One line: what broke, whose code it is, how to see the traceback and where to report it."""
    command = ctx.invoked_subcommand
    recipe = ctx.meta.get(_RECIPE_KEY)
    culprit, authors = "lstmzoo", "lstmzoo's issue tracker"
    if recipe:
        from .registry import provider_of
        provider = provider_of(recipe)
        if provider is not None and provider.distribution != "lstmzoo":
            culprit = f"the plugin {provider.distribution} {provider.version} (recipe {recipe})"
            authors = f"the authors of {provider.distribution}"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (f"this is a bug in {culprit}, not a mistake of yours: {type(error).__name__}"
            f"{': ' + message if message else ''}; run it again as `lstmzoo --debug {command or ''} ...` (or with "
            f"{DEBUG_VARIABLE}=1) to see the traceback, and report it with that traceback to {authors}")


def _warn_skipped_plugins():
    for failure in plugin_failures():
        click.echo(f"skipped plugin {failure.distribution} ({failure.entry_point}): {failure.reason}", err=True)


_RECIPE_KEY = "lstmzoo.recipe"   # in click's context meta (shared by nested contexts): the recipe a command runs


def _recipe(name):
    _warn_skipped_plugins()
    click.get_current_context().meta[_RECIPE_KEY] = name
    try:
        return get_recipe(name)
    except UnknownRecipeError as error:
        raise UserError(str(error)) from None


def _sentence(error):
    return str(error).strip() or type(error).__name__


def _print_metrics(metrics, as_json):
    if as_json:
        try:    # standard JSON only: NaN and Infinity break strict parsers (jq, JavaScript)
            click.echo(json.dumps(metrics, allow_nan=False))
        except ValueError:
            bad = sorted(name for name, value in metrics.items()
                         if isinstance(value, float) and not math.isfinite(value))
            raise click.ClickException(f"the metrics {', '.join(bad)} are not finite numbers, which standard JSON "
                                       f"cannot carry; run it without --json to see them") from None
        return
    width = max(map(len, metrics), default=0)
    for name, value in metrics.items():
        click.echo(f"  {name:<{width}}  {value:.4f}" if isinstance(value, float) else f"  {name:<{width}}  {value}")


@click.group(cls=LstmzooGroup, context_settings=CONTEXT, epilog="""\b
Examples:
  lstmzoo list
  lstmzoo train airline-passengers
  lstmzoo train forecasting --data sales.csv
  lstmzoo evaluate airline-passengers --checkpoint runs/airline-passengers-20250101-120000
  lstmzoo --debug evaluate airline-passengers --checkpoint runs/air   # a bug's traceback
Every command has --help with an example. A mistake in what you asked for ends with one sentence and exit
status 2; a failure you did not cause (no network, a diverging training) with one sentence and exit status 1.""")
@click.version_option(__version__, prog_name="lstmzoo")
@click.option("--debug", is_flag=True, envvar=DEBUG_VARIABLE,
              help=f"Show the traceback of an unexpected error (a bug) instead of one line (also {DEBUG_VARIABLE}=1).")
def main(debug):
    """Fused LSTM kernels, tasks that train on your own files, and a zoo of ready recipes: one command from a
    fresh install to a trained model."""


@main.command("list", epilog="""\b
Examples:
  lstmzoo list
  lstmzoo list --application time-series --json""")
@click.option("--application", type=click.Choice(APPLICATIONS), help="Only recipes of this application.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(application, as_json):
    """List the tasks (your own data: train TASK --data FILE) and the installed recipes (built-in and from
    plugins)."""
    _warn_skipped_plugins()
    recipes = list_recipes(application)
    if as_json:
        click.echo(json.dumps([{"name": r.name, "application": r.application, "summary": r.summary,
                                "task": bool(r.task)} for r in recipes], indent=2))
        return
    if not recipes:
        click.echo("no recipes installed" + (f" for {application}" if application else ""))
        return
    name_width = max(len(r.name) for r in recipes)
    app_width = max(len(r.application) for r in recipes)
    tasks = [r for r in recipes if r.task]
    zoo = [r for r in recipes if not r.task]
    for title, group in (("tasks: your own data, lstmzoo train TASK --data FILE", tasks),
                         ("recipes: a dataset and a published result, lstmzoo train RECIPE", zoo)):
        if group:
            click.echo(title)
            for r in group:
                click.echo(f"  {r.name:<{name_width}}  {r.application:<{app_width}}  {r.summary}")


@main.command(epilog="""\b
Examples:
  lstmzoo info airline-passengers
  lstmzoo info airline-passengers --json""")
@click.argument("recipe")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as one JSON object.")
def info(recipe, as_json):
    """Show a recipe: summary, data and preprocessing, hyperparameters with defaults, anchor, measured result."""
    described = _recipe(recipe).describe()
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    click.echo(f"{described['name']} ({described['application']})\n  {described['summary']}")
    click.echo("\ndata:")
    if described.get("formats"):     # a task: the user's files
        click.echo(f"  your own, given with --data PATH (and --test-data PATH): {described['formats']}")
    for d in described["datasets"]:
        where = f"ships with {d['bundled_with']}" if d["bundled_with"] else "downloaded on first use"
        click.echo(f"  {d['dataset']}/{d['filename']} ({where})\n    {d['url']}\n    sha256 {d['sha256']}")
    if described["preprocessing"]:
        click.echo(f"\npreprocessing:\n  {described['preprocessing']}")
    click.echo("\nhyperparameters (override with --set name=value):")
    width = max(map(len, described["hyperparameters"]))
    for name, spec in described["hyperparameters"].items():
        choices = f" (one of {', '.join(map(str, spec['choices']))})" if "choices" in spec else ""
        click.echo(f"  {name:<{width}}  {spec['default']!s:<8} {spec['type']:<5}  {spec['help']}{choices}")
    if described["anchor"]:
        anchor = described["anchor"]
        click.echo(f"\nanchor:\n  {anchor['metric']} {anchor['value']}  ({anchor['source']})")
    if described["measured"]:
        click.echo(f"\nmeasured with the defaults:\n  {described['measured']}")
    if described["predict_input"]:
        click.echo(f"\npredict --input:\n  {described['predict_input']}")


@main.command(epilog="""\b
Examples:
  lstmzoo download monthly-sunspots
  lstmzoo download --all
  LSTMZOO_MIRROR=/data/lstmzoo-mirror lstmzoo download --all
Files are cached in $LSTMZOO_DATA_DIR (default: the user cache folder); $LSTMZOO_MIRROR, a folder or
http(s) URL laid out as <mirror>/<dataset>/<file>, is tried before the upstream URL.""")
@click.argument("recipe", required=False)
@click.option("--all", "all_recipes", is_flag=True, help="Download the data of every installed recipe.")
def download(recipe, all_recipes):
    """Download and verify (sha256) the data of a recipe."""
    from .data import fetch
    if bool(recipe) == all_recipes:
        raise UserError("name one recipe, or pass --all")
    if all_recipes:
        _warn_skipped_plugins()
    recipes = list_recipes() if all_recipes else [_recipe(recipe)]
    for r in recipes:
        for datafile in r.datasets:
            with _reported():
                where = fetch(datafile)
            note = " (ships with the package)" if datafile.bundled_with else ""
            click.echo(f"{r.name}: {datafile.filename} -> {where}{note}")


def _existing(ctx, param, path):
    """The callback of an option naming a file or folder that must exist (``--data``, ``--test-data``): one
    sentence and exit 2 when it does not, or cannot be read, instead of click's usage block (what
    ``click.Path(exists=True)`` prints)."""
    if path is None or ctx.resilient_parsing:
        return path
    option = max(param.opts, key=len)
    if not path.exists():
        raise UserError(f"{path} does not exist (given with {option})")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path} cannot be read: permission denied (given with {option})")
    return path


# readable=False: _existing checks it, in one sentence.
_EXISTING_PATH = click.Path(readable=False, path_type=Path)


def _data_options_of_train(command):
    """``--data`` and ``--test-data``, as ``train`` and ``sweep`` take them."""
    command = click.option("--test-data", type=_EXISTING_PATH, callback=_existing,
                           help="Tasks: the file (or folder) to score the test metrics on  [default: a part of "
                                "--data held out]")(command)
    return click.option("--data", type=_EXISTING_PATH, callback=_existing,
                        help="Tasks: the file (or folder) to train on; see lstmzoo info TASK for the "
                             "formats.")(command)


def _limit_threads(ctx, param, threads):
    if threads is not None and not ctx.resilient_parsing:
        from .launcher import limit_threads
        limit_threads(threads)


def _threads_option(command):
    """``--threads N``: the process's thread pools (Numba's, OpenBLAS's) limited to N, for several runs side by
    side on one machine."""
    return click.option("--threads", type=click.IntRange(min=1), expose_value=False, callback=_limit_threads,
                        help="Threads for the kernels and NumPy's BLAS (e.g. 1 for several runs side by side)  "
                             "[default: one per core]")(command)


def _parse_settings(settings):
    overrides = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set takes name=value, got {setting!r}")
        overrides[name.strip()] = value.strip()
    return overrides


@main.command(epilog="""\b
Examples:
  lstmzoo train airline-passengers
  lstmzoo train airline-passengers --seed 1 --set hidden_size=64 --set lr=0.002
  lstmzoo train airline-passengers --out runs/air --epochs 50
  lstmzoo train airline-passengers --out runs/air --resume     # continue after Ctrl-C
  lstmzoo train forecasting --data sales.csv --set horizon=6   # a task: your own data
  lstmzoo train sequence-classification --data train.ts --test-data test.ts
  lstmzoo train text-classification --data reviews.csv --out runs/reviews
  lstmzoo train sequence-classification --data train.ts --time-limit 10m   # the best model after ~10 minutes
The hyperparameters and their defaults: lstmzoo info RECIPE (or TASK).""")
@click.argument("recipe")
@_data_options_of_train
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs  [default: the recipe's]")
@click.option("--seed", type=int, help="Random seed  [default: the recipe's, 0]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder  [default: runs/RECIPE-TIMESTAMP]")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to train  [default: cpu]")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", help="Override a hyperparameter (repeatable).")
@click.option("--time-limit", metavar="DURATION",
              help="Stop at the first epoch end after this long (90s, 10m, 1h30m; from the resume with --resume), "
                   "keeping the best model so far.")
@_threads_option
def train(recipe, data, test_data, epochs, seed, out, resume, device, settings, time_limit):
    """Train a recipe, or a task on your data; writes config, best and last weights, metrics log and learning
    curve to the run folder, then prints the best model's metrics on the test split. Under `mpiexec -n N` it
    trains data-parallel on N ranks (lstmzoo.distributed): rank 0 holds the run folder and speaks."""
    from . import distributed
    from .checkpoint import (
        CONFIG,
        WEIGHTS_AVERAGE,
        CheckpointError,
        check_new_run_folder,
        has_checkpoint,
        read_config,
        run_folder_lock,
    )
    with _reported():
        world = distributed.world()
    leader = world is None or world.rank == 0
    distributed.quiet_other_ranks()
    chosen = _recipe(recipe)
    options = {}
    if time_limit is not None:
        options["time_limit"] = parse_duration(time_limit, "--time-limit")
        if not _takes_option(chosen.train, "time_limit"):
            raise UserError(f"recipe {chosen.name!r} trains in its own way, which does not take --time-limit")
    overrides = _parse_settings(settings)
    for name, value in (("epochs", epochs), ("seed", seed), ("device", device)):
        if value is not None:
            overrides[name] = value
    overrides.update(_data_options(chosen, data=data, test_data=test_data))
    if not resume and chosen.task and "data" not in overrides:
        raise UserError(f"the {chosen.name} task trains on your data: give it with --data FILE (the formats: "
                        f"lstmzoo info {chosen.name})")
    if resume and out is None:
        raise UserError("--resume continues a run: name its folder with --out")
    if resume and set(overrides) - {"epochs", "device"}:
        raise UserError("a resumed run keeps its hyperparameters: only --epochs and --device may change")
    run_dir = out or Path("runs") / f"{chosen.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if not resume:      # checked before the folder or its lock file is made: a refusal leaves nothing behind
        with _reported():
            hp = chosen.resolve(overrides)
            if has_checkpoint(run_dir):
                raise UserError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
            check_new_run_folder(run_dir)
            # A task reads the user's file here, before the folder exists: a bad file leaves nothing behind.
            hp = chosen.settle(hp)
        _check_device(hp["device"])
    # One writer at a time, from the first check to the last plot: a second `train` (or `evaluate`) into this
    # folder is refused until this one ends.
    with _reported(), run_folder_lock(run_dir, create=not resume) if leader else contextlib.nullcontext():
        if resume:
            if not has_checkpoint(run_dir):
                raise CheckpointError(f"{run_dir} holds no checkpoint to resume; train into it without --resume")
            # The run must be one of this recipe, its config.json intact and every saved value within bounds.
            saved = read_config(run_dir, recipe=chosen.name, of_recipe=True)["hyperparameters"]
            saved = chosen.recorded(saved)  # with the values of the hyperparameters the run predates
            chosen.check_run_format(run_dir)
            try:
                chosen.resolve(saved)
            except ValueError as error:
                raise CheckpointError(f"{run_dir / CONFIG} does not fit this version of the recipe: "
                                      f"{str(error).rstrip('.')}") from None
            hp = chosen.resolve({**saved, **overrides})
            _check_device(hp["device"])
        elif has_checkpoint(run_dir):
            raise UserError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
        else:
            check_new_run_folder(run_dir)   # empty, or a run folder: never someone else's files
        distributed.check_device(hp["device"])
        click.echo(f"training {chosen.name} into {run_dir}", err=True)
        if world is not None:
            click.echo(world.describe(), err=True)
        _say_if_compiling(hp["device"])
        try:
            with distributed.ending_the_job_on_failure():
                trained = chosen.train(hp, run_dir, resume=resume, **options)
            if not leader:
                return
            metrics = chosen.evaluate(trained.model, trained.data, hp, out_dir=run_dir)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted: the last complete epoch is saved in {run_dir}; continue with\n"
                       f"  lstmzoo train {chosen.name} --out {run_dir} --resume", err=True)
            sys.exit(130)
    result = trained.result
    curve = run_dir / "learning-curve.png"  # not drawn without matplotlib (the `plot` extra)
    averaged = run_dir / WEIGHTS_AVERAGE  # a recipe that keeps the mean of its last epochs
    click.echo(f"run folder {run_dir}:\n"
               f"  config          {run_dir / 'config.json'}\n"
               f"  best weights    {run_dir / 'weights-best.safetensors'} (epoch {result.best_epoch} of "
               f"{result.epochs_run})\n"
               f"  last weights    {run_dir / 'weights-last.safetensors'}\n"
               + (f"  averaged        {averaged} (the last {hp['average_epochs']} epochs)\n" if averaged.exists()
                  else "")
               + f"  metrics log     {run_dir / 'metrics.jsonl'}\n"
               + (f"  learning curve  {curve}\n" if curve.exists() else "")
               + f"test metrics of the {_KEPT[chosen.keep]}:")
    _print_metrics(metrics, as_json=False)


# The weights a recipe's training ends with (Recipe.keep), as the summary after `train` names them.
_KEPT = {"best": "best model", "last": "last epoch's model", "average": "averaged model"}

_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")


def parse_duration(text, option):
    """Seconds in a duration such as ``90s``, ``10m``, ``1h30m`` or ``1.5h`` (hours, minutes, seconds in that
    order, each optional, at least one); UserError, one sentence, for anything else or for zero."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise UserError(f"{option} takes a duration such as 90s, 10m or 1h30m, got {text!r}")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise UserError(f"{option} must be longer than zero, got {text!r}")
    return total


def _takes_option(method, name):
    """Whether ``method`` accepts the keyword argument ``name`` (by name, or through ``**options``)."""
    parameters = inspect.signature(method).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _say_if_compiling(device):
    """One line before a wait the user would otherwise take for a hang: Numba compiling the CPU kernels."""
    if device != "cpu":
        return
    from .kernels import cpu
    if cpu.cache_is_cold():
        click.echo("compiling the CPU kernels (first run only: Numba caches them for the next runs) ...", err=True)


def _data_options(chosen, **given):
    """``{hyperparameter: path}`` of the data options given (``--data``, ``--test-data``), which only tasks
    take."""
    given = {name: str(value) for name, value in given.items() if value is not None}
    if given and not chosen.task:
        from .registry import list_recipes
        tasks = ", ".join(r.name for r in list_recipes() if r.task)
        raise UserError(f"recipe {chosen.name!r} trains on its own dataset; --data and --test-data are for the "
                        f"tasks ({tasks})")
    return given


def _check_device(device):
    """A one-sentence error, before any work, when the device cannot be used here (CUDA without a GPU)."""
    from .array import device_module
    try:
        device_module(device)
    except RuntimeError as error:
        raise UserError(_sentence(error)) from None


@main.command(epilog="""\b
Examples:
  lstmzoo evaluate airline-passengers --checkpoint runs/air
  lstmzoo evaluate airline-passengers --checkpoint runs/air --json
  lstmzoo evaluate rt-polarity --checkpoint runs/rt --cv 10     # trains 10 models: slow
  lstmzoo evaluate forecasting --checkpoint runs/sales --data next-quarter.csv""")
@click.argument("recipe")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A run folder of this recipe.")
@click.option("--data", type=_EXISTING_PATH, callback=_existing,
              help="Tasks: score this file instead of the run's own test part.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of metric name -> number.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to run  [default: where it was trained]")
@click.option("--cv", "folds", type=click.IntRange(min=2), metavar="K",
              help="K-fold cross-validation with the run's hyperparameters instead: trains K new models (slow; "
                   "only recipes that support it).")
@_threads_option
def evaluate(recipe, checkpoint, data, as_json, device, folds):
    """Evaluate the best weights of a run on the recipe's test split (or cross-validate its hyperparameters)."""
    from .checkpoint import run_folder_lock
    chosen = _recipe(recipe)
    test_data = _data_options(chosen, test_data=data)
    with _reported():
        model, hp = chosen.restore(checkpoint, device=device)
        if chosen.task:
            chosen.check_data_unchanged(checkpoint, hp)     # the files it trained on, as they were
            hp = {**hp, **test_data}
        if folds:
            metrics = chosen.cross_validate(hp, folds, progress=not as_json)
        else:
            with run_folder_lock(checkpoint, create=False):    # evaluate draws its plots into the folder
                metrics = chosen.evaluate(model, chosen.load_data(hp), hp, out_dir=checkpoint)
    _print_metrics(metrics, as_json)


@main.command(epilog="""\b
Examples:
  lstmzoo predict airline-passengers --checkpoint runs/air --horizon 24
  lstmzoo predict airline-passengers --checkpoint runs/air --input past.csv --plot forecast.png
  lstmzoo predict forecasting --checkpoint runs/sales --input history.csv --output forecast.csv
What --input takes depends on the recipe: see `lstmzoo info RECIPE`.""")
@click.argument("recipe")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A run folder of this recipe.")
@click.option("--input", "input_", help="The recipe's input: a CSV of past values (time series), a file, a text.")
@click.option("--horizon", type=click.IntRange(min=1), help="Steps to forecast (time series)  [default: one season]")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to draw the forecast (time series)  [default: CHECKPOINT/forecast.png]")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Tasks: write the predictions to this CSV file  [default: print them]")
@click.option("--json", "as_json", is_flag=True, help="Print the prediction as JSON.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to run  [default: where it was trained]")
@_threads_option
def predict(recipe, checkpoint, input_, horizon, plot, output, as_json, device):
    """Run a trained recipe (or task) on new input."""
    chosen = _recipe(recipe)
    given = {name: value for name, value in (("input", input_), ("horizon", horizon), ("plot", plot),
                                             ("output", output)) if value is not None}
    unsupported = sorted(set(given) - set(chosen.predict_options()))
    if unsupported:
        why = getattr(chosen, "predict_refusals", {})     # a task's sentence for an option it does not take
        named = f"the {chosen.name} task" if chosen.task else f"recipe {chosen.name!r}"
        raise UserError(next((why[o] for o in unsupported if o in why), None)
                        or f"{named} does not take --{', --'.join(unsupported)}")
    from .checkpoint import run_folder_lock
    with _reported():
        model, hp = chosen.restore(checkpoint, device=device)
        with run_folder_lock(checkpoint, create=False):     # predict may draw into the folder
            result = chosen.predict(model, hp, checkpoint, **given)
    if not as_json:
        click.echo(chosen.format_prediction(result))
        return
    try:    # standard JSON only: NaN and Infinity break strict parsers (jq, JavaScript)
        click.echo(json.dumps(result, allow_nan=False))
    except ValueError:
        raise click.ClickException("the prediction holds NaN or infinite numbers, which standard JSON cannot "
                                   "carry; run it without --json to see them") from None


@main.command(epilog="""\b
Examples:
  lstmzoo generate tinyshakespeare --checkpoint runs/shakespeare --prompt "ROMEO:"
  lstmzoo generate tinyshakespeare --checkpoint runs/shakespeare --length 2000 --temperature 0.6 --seed 1
  lstmzoo generate tinyshakespeare --checkpoint runs/shakespeare --top-k 1      # greedy: always the likeliest
The text is printed as it is sampled, starting with the prompt.""")
@click.argument("recipe")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A run folder of this recipe.")
@click.option("--prompt", default="", help="Text to continue (empty: start as after a line break).")
@click.option("--length", type=click.IntRange(min=0), default=500, help="Characters to generate after the prompt.")
@click.option("--temperature", type=float, default=0.8,
              help="Above 0: below 1 sharpens the model's distribution (safer text), above 1 flattens it.")
@click.option("--top-k", type=click.IntRange(min=0), default=40,
              help="Sample only among the K likeliest next characters (0 = all, 1 = greedy).")
@click.option("--seed", type=int, help="Seed of the sampling, for a reproducible text  [default: a fresh one]")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to run  [default: where it was trained]")
@_threads_option
def generate(recipe, checkpoint, prompt, length, temperature, top_k, seed, device):
    """Sample text from a trained language model, printed as it is generated."""
    import numpy as np
    chosen = _recipe(recipe)
    if not callable(getattr(chosen, "generate", None)):
        raise UserError(f"recipe {chosen.name!r} is not a language model ({chosen.application}): it cannot "
                        f"generate text")
    if not temperature > 0:
        raise UserError(f"--temperature must be above 0, got {temperature}")
    with _reported():
        model, hp = chosen.restore(checkpoint, device=device)
        pieces = chosen.generate(model, hp, prompt, length, temperature=temperature, top_k=top_k,
                                 rng=np.random.default_rng(seed))
        for piece in pieces:
            click.echo(piece, nl=False)
            sys.stdout.flush()
    click.echo()


@main.command(epilog="""\b
Examples:
  lstmzoo plugins
  lstmzoo plugins --json""")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def plugins(as_json):
    """Show the distributions that provide recipes, and each plugin that failed to load, with the reason."""
    report = plugin_report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for provider in report["providers"]:
        click.echo(f"{provider['distribution']} {provider['version']}: {', '.join(provider['recipes'])}")
    for failure in report["failures"]:
        click.echo(f"FAILED {failure['distribution']} ({failure['entry_point']}): {failure['reason']}")


@main.command(epilog="""\b
Examples:
  lstmzoo bench --quick
  lstmzoo bench
  lstmzoo bench --cell gru --quick""")
@click.option("--quick", is_flag=True, help="A short run: fewer shapes and repeats.")
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True,
              help="The cell timed, against torch's nn.LSTM, nn.GRU or nn.RNN (tanh).")
def bench(quick, cell):
    """Time the CPU recurrent kernels against torch (when installed) and print a table."""
    from . import bench as benchmark
    benchmark.run(quick=quick, cell=cell)


@main.command(epilog="""\b
Examples:
  lstmzoo sweep airline-passengers --trials 20 --storage sqlite:///air.db --param hidden_size=int:8:64 \\
      --param lr=float:1e-4:1e-2:log
  lstmzoo sweep airline-passengers --trials 20 --storage journal:air.log --param dropout=choice:0,0.1,0.3 \\
      --epochs 50 --set hidden_size=16
  lstmzoo sweep forecasting --data sales.csv --trials 40 --storage sqlite:///sales.db --param window=int:12:48 \\
      --set horizon=6
  lstmzoo sweep airline-passengers ... --storage postgresql://user@db.example.org/sweeps   # across machines
Run the same command in more terminals, or on more machines with a database server, to add workers: they share
the study and stop when it holds N finished trials. Each trial is a run folder (OUT/trial-0007) that
lstmzoo evaluate takes; at the end the best trial and the command that trains it again are printed.""")
@click.argument("recipe")
@click.option("--trials", required=True, type=click.IntRange(min=1),
              help="Finished (complete or pruned) trials the study should hold; the workers stop there.")
@click.option("--storage", required=True,
              help="Where the study lives, shared by its workers: sqlite:///FILE.db or journal:FILE (or FILE.log) "
                   "on one machine, a postgresql:// or mysql:// URL across machines.")
@click.option("--param", "params", multiple=True, metavar="NAME=SPEC",
              help="A hyperparameter to search (repeatable): int:LOW:HIGH, float:LOW:HIGH (either with :log) or "
                   "choice:A,B,C.")
@click.option("--study", "study_name", help="The study's name in the storage  [default: the recipe's name]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The sweep's folder, one run folder per trial  [default: runs/sweep-STUDY]")
@click.option("--pruner", type=click.Choice(["median", "halving", "none"]), default="median",
              help="Stop trials early after an epoch, from a tenth of the epochs on: median, below the median of "
                   "the earlier trials at that epoch; halving, successive halving (rungs at a tenth of the epochs, "
                   "then 4x as many; a trial goes on in the best quarter of those at its rung); none.")
@_data_options_of_train
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs of every trial  [default: the recipe's]")
@click.option("--seed", type=int, help="Random seed of every trial's training  [default: the recipe's, 0]")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where to train  [default: cpu]")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Fix a hyperparameter for every trial (repeatable).")
@click.option("--heartbeat", type=click.IntRange(min=1), default=30,
              help="Database storages: seconds between a worker's signs of life; the trial of a worker silent "
                   "for twice as long is failed and its values tried once more.")
@_threads_option
def sweep(recipe, trials, storage, params, study_name, out, pruner, data, test_data, epochs, seed, device, settings,
          heartbeat):
    """Search a recipe's (or a task's) hyperparameters with Optuna; every process running the same command
    works on the same study. Needs the sweep extra: pip install 'lstmzoo[sweep]'."""
    try:
        from . import sweep as sweeping
    except ImportError as error:
        if error.name != "optuna":
            raise
        raise UserError(_sentence(error)) from None
    chosen = _recipe(recipe)
    fixed = _parse_settings(settings)
    for name, value in (("epochs", epochs), ("seed", seed), ("device", device)):
        if value is not None:
            fixed[name] = value
    fixed.update(_data_options(chosen, data=data, test_data=test_data))
    study_name = study_name or chosen.name
    out = out or Path("runs") / f"sweep-{study_name}"
    try:
        with _reported():
            plan = sweeping.plan(chosen, fixed, params)
            _check_device(plan.hyperparameters({})["device"])
            where = sweeping.open_storage(storage, heartbeat)
            _say_if_compiling(plan.hyperparameters({})["device"])
            study = sweeping.run(plan, trials=trials, storage=where, study_name=study_name, out=out, pruner=pruner,
                                 say=lambda line: click.echo(line, err=True))
            lines = sweeping.report(study, plan, where, out)
    except sweeping.SweepError as error:
        raise click.ClickException(_sentence(error)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the study keeps its trials; run the same command to go on", err=True)
        sys.exit(130)
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
