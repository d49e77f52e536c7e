"""Train and evaluate the zoo's recipes with their defaults and write the results table, zoo/RESULTS.md.

    python benchmarks/zoo.py                                        # every installed recipe, seed 0
    python benchmarks/zoo.py airline-passengers monthly-sunspots --seeds 0 1 2
    python benchmarks/zoo.py daily-min-temperatures --runs runs/zoo # keep the run folders
    python benchmarks/zoo.py tinyshakespeare --seeds 1 --add-seeds  # add seed 1 to the row of seed 0
    python benchmarks/zoo.py multi30k-en-de --runs runs/zoo --resume  # continue the runs kept in runs/zoo
    python benchmarks/zoo.py tinyshakespeare --baselines            # add the baseline to the recorded runs

Each run goes through the code `lstmzoo train RECIPE --seed S` runs (``Recipe.train``, then ``Recipe.evaluate``
on the test split) in a run folder of its own. A row reports the recipe's target metric with the first seed,
its spread over the seeds, the anchor, the target and whether every seed met it, the recipe's non-LSTM
baseline measured on the same data in the same run (``Recipe.baseline``), and the training time here.
``--baselines`` recomputes the baselines of the runs already recorded for the named recipes, on the data each
run's settings load, without training; such a row says so and when.

Rows of recipes not run this time are kept from the existing file: the table is rebuilt from the JSON record at
its end, and the file is replaced atomically. Set LSTMZOO_MIRROR (e.g. to ../shared/datasets) to read the
datasets from a mirror.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from lstmzoo import __version__
from lstmzoo.checkpoint import atomic_write_bytes
from lstmzoo.registry import get_recipe, list_recipes

RESULTS = Path(__file__).resolve().parents[1] / "zoo" / "RESULTS.md"
RECORD_START, RECORD_END = "<!-- zoo-results", "-->"
COLUMNS = ("recipe", "metric", "value", "spread over seeds", "anchor (source)", "target", "met",
           "non-LSTM baseline (same test split)", "training time", "reproduce")


def run_recipe(recipe, seeds, overrides, runs_dir, log=print, resume=False):
    """Train and evaluate ``recipe`` once per seed, as ``lstmzoo train`` does; the row's record as a dict.
    ``resume`` continues the run folders already in ``runs_dir`` (as ``lstmzoo train --resume``: a resumed run
    ends with the weights an uninterrupted one would have); its training time is the sum of every epoch's then."""
    runs = []
    for seed in seeds:
        hp = recipe.resolve({**overrides, "seed": seed})
        run_dir = Path(runs_dir) / f"{recipe.name}-seed{seed}"
        resumed = resume and run_dir.is_dir()
        started = time.perf_counter()
        trained = recipe.train(hp, run_dir, progress=False, resume=resumed)
        seconds = (sum(row.get("seconds", 0.0) for row in trained.result.history) if resumed
                   else time.perf_counter() - started)
        metrics = recipe.evaluate(trained.model, trained.data, hp, out_dir=run_dir)
        target = recipe.target(metrics)
        runs.append({"seed": seed, "metrics": metrics, "train_seconds": round(seconds, 1),
                     "best_epoch": trained.result.best_epoch, "epochs_run": trained.result.epochs_run,
                     "baseline": recipe.baseline(trained.data, hp),
                     "target": None if target is None else {"text": target[0], "met": bool(target[1])}})
        log(f"{recipe.name} seed {seed}: {json.dumps(metrics)} in {seconds:.0f} s "
            f"(best epoch {trained.result.best_epoch} of {trained.result.epochs_run})"
            + ("" if target is None else f"; target {target[0]}: {'met' if target[1] else 'NOT met'}"))
    settings = "".join(f" --set {name}={value}" for name, value in overrides.items())
    return {"recipe": recipe.name, "metric": recipe.anchor.metric if recipe.anchor else recipe.monitor,
            "anchor": None if recipe.anchor is None else {"value": recipe.anchor.value,
                                                           "source": recipe.anchor.source},
            "runs": runs, "command": f"lstmzoo train {recipe.name} --seed {seeds[0]}{settings}",
            "date": datetime.date.today().isoformat(), "machine": machine(), "lstmzoo": __version__}


def recorded_settings(record):
    """The ``--set`` overrides of a record's command, as ``{name: text}``."""
    words = record["command"].split()
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--set")


def recompute_baselines(recipe, record, log=print):
    """``{seed: Recipe.baseline}`` for each run of ``record``, on the data ``load_data`` gives for that run's seed
    and recorded settings (nothing is trained)."""
    baselines = {}
    for run in record["runs"]:
        hp = recipe.resolve({**recorded_settings(record), "seed": run["seed"]})
        baselines[run["seed"]] = recipe.baseline(recipe.load_data(hp), hp)
        log(f"{recipe.name} seed {run['seed']}: baseline {json.dumps(baselines[run['seed']])}")
    return baselines


def _stderr(line):
    print(line, file=sys.stderr)


def machine():
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}"


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table_row(record):
    runs = record["runs"]
    first, metric = runs[0], record["metric"]
    values = [run["metrics"].get(metric) for run in runs]
    found = [v for v in values if v is not None]
    value = _number(values[0]) if values[0] is not None else "n/a"
    if first["seed"] != 0:
        value += f" (seed {first['seed']})"
    seeds = ", ".join(str(run["seed"]) for run in runs)
    spread = f"{_number(min(found))}-{_number(max(found))} (seeds {seeds})" if len(found) > 1 else "one seed"
    anchor = record["anchor"] or {"value": None, "source": "none"}
    anchor_text = " ".join(filter(None, [_number(anchor["value"]) if anchor["value"] is not None else "",
                                         f"({anchor['source']})"]))
    targets = [run["target"] for run in runs]
    if targets[0] is None:
        target, met = "none stated", "n/a"
    else:
        hits = sum(t["met"] for t in targets)
        target = targets[0]["text"]
        met = ("yes" if targets[0]["met"] else "no") + (f" ({hits}/{len(runs)} seeds)" if len(runs) > 1 else "")
    baseline = ", ".join(f"{name} {_number(v)}" for name, v in first["baseline"].items()) or "none yet"
    if record.get("baseline_date") and first["baseline"]:
        baseline += f" (zoo.py --baselines, {record['baseline_date']})"
    times = [run["train_seconds"] for run in runs]
    timing = f"{times[0]:.0f} s" + (f" ({min(times):.0f}-{max(times):.0f} s over seeds)" if len(times) > 1 else "")
    cells = [f"`{record['recipe']}`", metric, value, spread, anchor_text, target, met, baseline, timing,
             f"`{record['command']}`"]
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def render(records):
    """RESULTS.md's text: the table, the machines, and the JSON record the next run merges into."""
    ordered = [records[name] for name in sorted(records)]
    machines = sorted({f"{r['machine']} (lstmzoo {r['lstmzoo']})" for r in ordered})
    lines = ["# Zoo results", "",
             ("Written by `python benchmarks/zoo.py` (do not edit by hand): each recipe trained with its defaults "
              "(`lstmzoo train RECIPE --seed S`) and evaluated on its test split. *value* is the first seed's; "
              "*met* counts the seeds whose run met the target; the baseline is the recipe's simple non-LSTM "
              "forecast, classifier or model measured on the same test split (for tinyshakespeare: the validation "
              "text its loss is on), by the same run or, where marked \"zoo.py --baselines, DATE\", on that "
              "date by `python benchmarks/zoo.py RECIPE --baselines` on the data of the recorded run's seed and "
              "settings, without training again; the training time includes loading the "
              "data and compiling the kernels (Numba), on a machine shared with other work (for a run resumed "
              "with --resume: the sum of its epochs' times)."), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS),
             *map(table_row, ordered), "",
             "Measured on: " + "; ".join(machines) + ". Dates: "
             + ", ".join(f"{r['recipe']} {r['date']}" for r in ordered) + ".", "",
             ("Reproducing a row: its command on the same CPU model with the same number of threads gives the "
              "same bits. On another CPU model the arithmetic can differ in its last bits (NumPy's OpenBLAS picks "
              "other kernels, Numba compiles the kernels for other vector widths), and a training's path can "
              "drift from there: pendigits seed 0 reached accuracy 0.9934 here and 0.9946 on another AMD EPYC; "
              "airline-passengers gave rmse 17.80015 on both. Compare with the spread over seeds, not the last "
              "digits."), "",
             RECORD_START, json.dumps(ordered, indent=1), RECORD_END, ""]
    return "\n".join(lines)


def read_records(path):
    """The records in an existing RESULTS.md, by recipe name ({} when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    text = path.read_text()
    start = text.rfind(RECORD_START)
    if start < 0:
        return {}
    end = text.index(RECORD_END, start)
    return {record["recipe"]: record for record in json.loads(text[start + len(RECORD_START):end])}


def add_seeds(old, new):
    """``old``'s record with ``new``'s runs added (a seed run again replaces its old run); the row's command stays
    that of the first seed. ValueError when the two were run with different settings."""
    settings = [record["command"].split(" --seed ")[1].partition(" ")[2] for record in (old, new)]
    if settings[0] != settings[1]:
        raise ValueError(f"{old['recipe']} was recorded with settings {settings[0]!r}, not {settings[1]!r}: "
                         "run every seed again instead of adding to it")
    seeds = {run["seed"] for run in new["runs"]}
    runs = sorted([run for run in old["runs"] if run["seed"] not in seeds] + new["runs"], key=lambda r: r["seed"])
    merged = {**new, "runs": runs, "command": old["command"] if runs[0] in old["runs"] else new["command"]}
    if old.get("baseline_date") and runs[0] in old["runs"]:     # the row shows the first run's baseline
        merged["baseline_date"] = old["baseline_date"]
    return merged


def write_results(path, new_records, add=False):
    """Merge ``new_records`` into the file at ``path`` (rows of other recipes stay; with ``add``, the runs of
    recipes already there are kept beside the new seeds') and replace it atomically."""
    records = read_records(path)
    for record in new_records:
        old = records.get(record["recipe"])
        records[record["recipe"]] = add_seeds(old, record) if add and old else record
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), render(records).encode())
    return records


def write_baselines(path, baselines, date):
    """Store ``baselines`` (``{recipe: (the record's command, {seed: baseline})}``) in the runs recorded in the
    file at ``path``, re-read now, with ``baseline_date`` ``date``, and replace the file atomically. ValueError
    when a row is missing or was replaced (another command or other seeds) since the baselines were computed."""
    records = read_records(path)
    for name, (command, by_seed) in baselines.items():
        record = records.get(name)
        if record is None or record["command"] != command or {r["seed"] for r in record["runs"]} != set(by_seed):
            raise ValueError(f"the row of {name} in {path} changed while its baselines were computed: run "
                             "--baselines again")
        records[name] = {**record, "runs": [{**run, "baseline": by_seed[run["seed"]]} for run in record["runs"]],
                         "baseline_date": date}
    atomic_write_bytes(Path(path), render(records).encode())
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="recipe names (default: every installed recipe)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds to train with (default: 0)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"table to write (default: {RESULTS})")
    parser.add_argument("--runs", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted (or shorter) runs kept in --runs instead of starting afresh")
    parser.add_argument("--add-seeds", action="store_true",
                        help="add these seeds' runs to the recipes' existing rows instead of replacing the rows "
                             "(to spread long runs over several processes)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="override a hyperparameter of every recipe run (for quick checks, not for the table)")
    parser.add_argument("--baselines", action="store_true",
                        help="train nothing: recompute the non-LSTM baselines of the runs already recorded for "
                             "the named recipes (with each row's seeds and settings) and store them in the table")
    args = parser.parse_args(argv)
    overrides = dict(setting.split("=", 1) for setting in args.settings)
    recipes = [get_recipe(name) for name in args.recipes] if args.recipes else list_recipes()
    if args.baselines:
        return main_baselines(parser, args, recipes)
    with tempfile.TemporaryDirectory(prefix="lstmzoo-zoo-") as scratch:
        runs_dir = args.runs or Path(scratch)
        if args.resume and not args.runs:
            parser.error("--resume continues the run folders in --runs: name it")
        if args.runs and not args.resume and any(any(runs_dir.glob(f"{r.name}-seed*")) for r in recipes):
            parser.error(f"{runs_dir} already holds runs of these recipes: choose another --runs, or --resume them")
        records = [run_recipe(recipe, args.seeds or [0], overrides, runs_dir, log=_stderr, resume=args.resume)
                   for recipe in recipes]
    merged = write_results(args.results, records, add=args.add_seeds)
    print(f"wrote {args.results}", file=sys.stderr)
    for record in records:
        print(table_row(merged[record["recipe"]]))


def main_baselines(parser, args, recipes):
    if not args.recipes:
        parser.error("--baselines needs the names of the recipes whose rows to complete")
    if args.settings or args.runs or args.resume or args.add_seeds or args.seeds:
        parser.error("--baselines uses each row's recorded seeds and settings: drop --seeds, --set, --runs, "
                     "--resume and --add-seeds")
    records = read_records(args.results)
    missing = [recipe.name for recipe in recipes if recipe.name not in records]
    if missing:
        parser.error(f"{args.results} has no row of {', '.join(missing)} to add a baseline to: train it first")
    baselines = {recipe.name: (records[recipe.name]["command"],
                               recompute_baselines(recipe, records[recipe.name], log=_stderr))
                 for recipe in recipes}
    try:
        merged = write_baselines(args.results, baselines, datetime.date.today().isoformat())
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {args.results}", file=sys.stderr)
    for name in baselines:
        print(table_row(merged[name]))


if __name__ == "__main__":
    main()
