"""The recipe contract: what a built-in or third-party recipe declares and implements.

A recipe is a subclass of :class:`Recipe` whose metadata are plain class attributes, so that listing the zoo
reads them without building anything. Heavy imports (``lstmzoo.nn``, Numba, librosa) belong inside the
methods, never at the top of the module the entry point names: ``lstmzoo list`` imports that module.

The entry-point group ``lstmzoo.recipes`` maps a recipe name to the class (or to a factory returning an
instance); see README.md, "Recipes and plugins", for a worked plugin.

Hyperparameters travel as a plain ``dict`` (name -> value) holding every declared name; it is what
``config.json`` records, so that ``evaluate`` and ``predict`` rebuild the same model from a run folder.
This module stays free of NumPy and of the layers so the CLI starts fast.
"""

import dataclasses
import inspect
import math
import re
from typing import ClassVar

from .errors import RecipeError, UserError

APPLICATIONS = ("time-series", "sequence-classification", "sequence-regression", "text-classification",
                "language-modeling", "translation", "sentiment-analysis", "speech-commands", "speech-to-text",
                "handwriting", "video")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file of a dataset, fetched by ``lstmzoo.data.fetch``.

    ``dataset`` names the folder the file lives in, in the cache and in a mirror
    (``$LSTMZOO_MIRROR/<dataset>/<filename>``); ``url`` is the canonical upstream address and ``sha256``
    its checksum. ``bundled_with`` names a package whose ``data/`` folder ships the file, in which case
    nothing is downloaded (the URL and checksum still say where it came from).

    A dataset that upstream publishes as many files and no single archive is declared as a folder:
    ``manifest`` names a ``sha256sum``-style list (``<sha256>  <name>`` per line) shipped in the ``data/`` folder
    of a package, as ``"package:filename"``; ``filename`` is then the folder's name, ``url`` the upstream base
    URL the names are appended to, and ``sha256`` the manifest's own checksum. A mirror may hold the folder
    itself or a ``<filename>.tar.gz`` of it; either way every file is checked against the manifest.
    """
    dataset: str
    filename: str
    url: str
    sha256: str
    bundled_with: str | None = None
    manifest: str | None = None


# Bounds of the hyperparameters whose names carry one meaning in every recipe, applied where a Hyperparameter
# declares no bounds of its own (inclusive; None = unbounded). They stop values that make no sense (a
# negative clip_norm flips the gradient, epochs=0 calls the untrained model the best) and sizes that would
# only end in a MemoryError, at --set and when a config.json is read.
CONVENTIONAL_BOUNDS = {
    "epochs": (1, 100_000), "lr": (1e-12, 10.0), "min_lr": (0.0, 10.0), "clip_norm": (0.0, 1e9),
    "patience": (0, 100_000), "batch_size": (1, 65_536), "eval_batch_size": (1, 65_536),
    "hidden_size": (1, 16_384), "num_layers": (1, 64), "dropout": (0.0, 0.99),
    "embedding_dim": (1, 16_384), "window": (1, 1_000_000), "step": (1, 1_000_000),
    "val_size": (1, 1_000_000_000), "limit": (0, 1_000_000_000), "eval_limit": (0, 1_000_000_000),
    "beam_width": (1, 1_000), "val_fraction": (0.01, 0.9), "weight_decay": (0.0, 10.0),
}


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """A typed default, overridable with ``--set name=value``; the type is the default's
    (bool, int, float or str); ``choices`` restricts the allowed values; ``low`` and ``high`` bound a number
    (inclusive; when both are None the conventional bounds of well-known names apply, see
    ``CONVENTIONAL_BOUNDS``). A float is always finite. ``before`` is the value a run folder recorded before the
    hyperparameter existed trained with, when that is not ``default`` (a new default for a recipe's new runs: the
    older runs keep what they were, see ``Recipe.recorded``)."""
    default: bool | int | float | str
    help: str
    choices: tuple | None = None
    low: int | float | None = None
    high: int | float | None = None
    before: bool | int | float | str | None = None

    @property
    def type(self):
        return type(self.default)

    def bounds(self, name):
        """(low, high) for the hyperparameter called ``name``; either may be None."""
        if self.low is None and self.high is None and self.type in (int, float):
            return CONVENTIONAL_BOUNDS.get(name, (None, None))
        return self.low, self.high

    def parse(self, name, text):
        """The value of ``--set name=text``; UserError with one sentence when it is not one."""
        kind = self.type
        try:
            if kind is bool:
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError
                value = text.lower() in _TRUE
            else:
                value = kind(text)
        except ValueError:
            raise UserError(f"hyperparameter {name!r} takes a {kind.__name__}, got {text!r}") from None
        return self.check(name, value)

    def check(self, name, value):
        """``value`` if it has the right type, is finite, within bounds and one of the choices, else UserError."""
        if self.type is float and type(value) is int:
            value = float(value)
        if type(value) is not self.type:
            raise UserError(f"hyperparameter {name!r} takes a {self.type.__name__}, got {value!r}")
        if self.type is float and not math.isfinite(value):
            raise UserError(f"hyperparameter {name!r} must be a finite number, got {value!r}")
        low, high = self.bounds(name)
        if (low is not None and value < low) or (high is not None and value > high):
            wanted = (f"between {low:g} and {high:g}" if low is not None and high is not None
                      else f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise UserError(f"hyperparameter {name!r} must be {wanted}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise UserError(f"hyperparameter {name!r} must be one of {', '.join(map(str, self.choices))}, "
                            f"got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A published (or standard baseline) result the recipe aims at: metric, value, and where it is from."""
    metric: str
    value: float | None
    source: str


@dataclasses.dataclass
class Trained:
    """What ``Recipe.train`` returns: the model (holding the best epoch's weights), the data it loaded,
    ``lstmzoo.train.FitResult``, and the hyperparameters it trained with (``settle``d)."""
    model: object
    data: object
    result: object
    hp: dict | None = None


# Every recipe has these; the CLI's --epochs, --seed and --device set them, and a recipe may redeclare one to
# change its default (airline-passengers trains for more epochs than a language model does).
COMMON_HYPERPARAMETERS = {
    "epochs": Hyperparameter(10, "passes over the training data"),
    "seed": Hyperparameter(0, "seed of weight initialisation, dropout and shuffling"),
    "device": Hyperparameter("cpu", "where the model runs", choices=("cpu", "cuda")),
}

# The methods a recipe must write itself; train() has a default built on make_batches/train_step/validate.
REQUIRED_METHODS = ("build_model", "load_data", "evaluate", "predict")
TRAINING_METHODS = ("make_batches", "train_step", "validate")


class Recipe:
    """Base class of every recipe. Subclasses set the metadata and implement the methods below."""

    # ------------------------------------------------------------------------------ metadata
    name: str = ""                      # unique, lower-case, dashes: "airline-passengers"
    application: str = ""               # one of APPLICATIONS
    summary: str = ""                   # one line for `lstmzoo list`
    datasets: tuple = ()                # DataFile entries
    hyperparameters: ClassVar[dict] = {}        # name -> Hyperparameter, on top of COMMON_HYPERPARAMETERS
    anchor: Anchor | None = None        # the result the recipe aims at
    measured: str = ""                  # what the defaults reached here, with seed, time and machine
    preprocessing: str = ""             # what the recipe does to the data before the model sees it
    predict_input: str = ""             # what `lstmzoo predict --input` takes for this recipe
    task: bool = False                  # a task of lstmzoo.tasks: trains on the user's --data
    monitor: str = "val_loss"           # the validation metric that picks the best epoch
    mode: str = "min"                   # "min" or "max": which way `monitor` improves
    keep: str = "best"                  # the weights training ends with: the "best" epoch's by `monitor`, the
                                        # "last" epoch's (a schedule fixes the length), or the "average" of the
                                        # last `average_epochs` epochs' (a hyperparameter the recipe then
                                        # declares); `restore` loads the same
    schedule: str | None = None         # the default make_scheduler's learning-rate schedule: None (a constant
                                        # rate) or "cosine" (half a cosine from lr to 0 over `epochs`)

    # ---------------------------------------------------------------- to implement (required)
    def build_model(self, hp):
        """A fresh ``lstmzoo.nn.Module`` for the hyperparameters ``hp`` on ``hp["device"]``."""
        raise NotImplementedError

    def load_data(self, hp):
        """The recipe's data, split and preprocessed (any object; it is handed back to the methods
        below). Fetch files with ``lstmzoo.data.fetch(self.datasets[i])``."""
        raise NotImplementedError

    def evaluate(self, model, data, hp, out_dir=None):
        """Test-split metrics as a dict of name -> number; files such as plots go into ``out_dir``."""
        raise NotImplementedError

    def predict(self, model, hp, out_dir, *, input=None):
        """A JSON-serialisable dict for the user's ``input`` (see ``predict_input``). More keyword-only
        options (``horizon``, ``plot``) are offered by the CLI exactly when the signature names them."""
        raise NotImplementedError

    # ------------------------------------------------------ to implement (for the default train)
    def make_batches(self, data, hp, rng):
        """An iterable of training batches for one epoch, shuffled with the NumPy Generator ``rng``."""
        raise NotImplementedError

    def train_step(self, model, batch, hp):
        """Forward, loss and backward on one batch (gradients accumulate in the model); returns
        ``(mean_loss, number_of_items)``. The trainer zeroes gradients and steps the optimizer."""
        raise NotImplementedError

    def validate(self, model, data, hp):
        """Validation metrics as a dict; must contain ``self.monitor``."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- overridable
    def make_optimizer(self, model, hp):
        from .optim import Adam
        return Adam(model, lr=hp["lr"])

    def settle(self, hp):
        """``hp`` with any data-dependent default made concrete (a task infers its horizon from the user's file);
        what ``config.json`` records, so ``evaluate`` and ``predict`` rebuild the same model. The default: ``hp``."""
        return hp

    def make_scheduler(self, optimizer, hp):
        """A learning-rate schedule from ``lstmzoo.schedules``, or None (a constant rate). The default follows
        the class attribute ``schedule``: None (a constant rate), or ``"cosine"``: ``CosineLR(optimizer,
        hp["epochs"])``, the rate falling along half a cosine from ``lr`` to 0 over the epochs, so that the last
        ones settle. A recipe with another schedule (a floor, a warm-up, a plateau rule) overrides this."""
        if self.schedule is None:
            return None
        if self.schedule == "cosine":
            from .schedules import CosineLR
            return CosineLR(optimizer, hp["epochs"])
        raise RecipeError(f"recipe {self.name!r} has schedule {self.schedule!r}; the default make_scheduler "
                          f"knows None and 'cosine' (override make_scheduler for another)")

    def train(self, hp, run_dir, *, resume=False, progress=True, data=None, learning_curve=True,
              on_epoch_end=None, time_limit=None):
        """Train into ``run_dir`` with ``lstmzoo.train.fit``; returns a ``Trained`` whose model holds the
        weights ``keep`` names (``resume`` continues the run in ``run_dir``). ``data`` is what ``load_data(hp)``
        would return, when the caller has it already (the estimators hand a task their arrays this way);
        ``learning_curve=False`` draws no learning-curve.png (into a run folder nobody will look at);
        ``on_epoch_end(row)`` goes to ``fit`` (a sweep reports each epoch's metrics and may stop the trial by
        raising from it: the epoch's checkpoint is committed first, so the folder stays resumable);
        ``time_limit`` (seconds; the CLI's ``--time-limit``) goes to ``fit``: training ends at the first epoch end
        past it, with the best checkpoint so far.

        Honours the optional hyperparameters ``patience`` (epochs without improvement before stopping;
        0 = never) and ``clip_norm`` (global gradient-norm clipping; 0 = off); ``fit`` refuses (ValueError)
        ``epochs`` below 1 and a negative or NaN ``patience`` or ``clip_norm`` that did not come through
        ``resolve``, which checks every value's bounds.
        """
        from . import random
        from .train import fit
        if data is None:
            hp = self.settle(hp)
        random.seed(hp["seed"])
        data = self.load_data(hp) if data is None else data
        model = self.build_model(hp)
        optimizer = self.make_optimizer(model, hp)
        result = fit(
            model, optimizer,
            train_step=lambda model, batch: self._checked_train_step(model, batch, hp),
            make_batches=lambda rng: self.make_batches(data, hp, rng),
            evaluate=lambda model: self._checked_validate(model, data, hp),
            epochs=hp["epochs"], run_dir=run_dir, monitor=self.monitor, mode=self.mode, keep=self.keep,
            average=hp["average_epochs"] if self.keep == "average" else None,
            patience=hp.get("patience") or None, clip_norm=hp.get("clip_norm") or None,
            scheduler=self.make_scheduler(optimizer, hp), resume=resume, config=self.run_config(hp, data),
            progress=progress, learning_curve=learning_curve, on_epoch_end=on_epoch_end,
            shard_batch=self.shard_batch, time_limit=time_limit)
        return Trained(model, data, result, hp)

    def shard_batch(self, batch, rank, size):
        """Data-parallel training (``mpiexec -n N lstmzoo train``): rank ``rank``'s part of a batch of
        ``make_batches`` as a ``lstmzoo.distributed.Shard``. The default cuts the layout of lstmzoo's sequence
        recipes and tasks (``lstmzoo.distributed``'s docstring states it); a recipe whose batches look otherwise
        overrides this."""
        from .distributed import shard_batch
        return shard_batch(batch, rank, size)

    def _checked_train_step(self, model, batch, hp):
        result = self.train_step(model, batch, hp)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise RecipeError(f"recipe {self.name!r} broke the recipe contract: train_step must return "
                              f"(mean_loss, number_of_items), it returned {type(result).__name__} {result!r:.60}")
        return result

    def _checked_validate(self, model, data, hp):
        metrics = self.validate(model, data, hp)
        # "epoch" and "train_loss" are monitors the trainer adds to every epoch's row itself.
        if not isinstance(metrics, dict) or self.monitor not in (*metrics, "epoch", "train_loss"):
            raise RecipeError(f"recipe {self.name!r} broke the recipe contract: validate must return a dict "
                              f"holding its monitor {self.monitor!r}, it returned {metrics!r:.80}")
        return metrics

    # ------------------------------------------------------------------------------ provided
    @classmethod
    def all_hyperparameters(cls):
        """Every hyperparameter of the recipe: the common ones, then its own."""
        return {**COMMON_HYPERPARAMETERS, **cls.hyperparameters}

    @classmethod
    def resolve(cls, overrides=None):
        """The complete hyperparameter dict: defaults, with ``overrides`` (name -> value or the text of
        ``--set``) applied and checked. UserError (one sentence) for an unknown name or a bad value."""
        declared = cls.all_hyperparameters()
        hp = {name: spec.default for name, spec in declared.items()}
        for name, value in (overrides or {}).items():
            if name not in declared:
                raise UserError(f"recipe {cls.name!r} has no hyperparameter {name!r}; "
                                 f"it has {', '.join(sorted(declared))}")
            spec = declared[name]
            hp[name] = spec.parse(name, value) if isinstance(value, str) else spec.check(name, value)
        return hp

    @classmethod
    def recorded(cls, saved):
        """The hyperparameters a run folder's config.json recorded (``saved``, a dict), with those the run predates
        that declare a ``before`` value set to it; ``resolve`` then fills the rest with their defaults."""
        if not isinstance(saved, dict):
            return saved
        older = {name: spec.before for name, spec in cls.all_hyperparameters().items()
                 if spec.before is not None and name not in saved}
        return {**older, **saved}

    def run_config(self, hp, data=None):
        """What ``config.json`` records (the trainer adds versions and time): enough to rebuild the model. A task
        adds what it fitted on ``data`` (what ``load_data`` returned), so ``predict`` needs nothing else."""
        return {"recipe": self.name, "hyperparameters": hp}

    def check_run_format(self, run_dir):
        """CheckpointError (one sentence) when the run in ``run_dir`` was written in a form this version cannot
        read; a recipe's runs have one form (a task raises its ``format`` when its runs change)."""

    def restore(self, run_dir, weights=None, device=None):
        """``(model, hp)`` from a run folder of this recipe with its ``weights`` (``"best"`` or ``"last"``;
        default: the recipe's ``keep``, the weights training ended with), on ``device`` (default: the one it was
        trained on); ``checkpoint.CheckpointError`` (one sentence) when the folder is missing, damaged or belongs
        to another recipe, or when its device cannot be used here."""
        from pathlib import Path

        from .checkpoint import CONFIG, WEIGHTS_AVERAGE, CheckpointError, load_weights, read_config
        run_dir = Path(run_dir)
        # Checked: the checksum, the shape of the object, the recipe; then every value against its
        # Hyperparameter's type and bounds, as --set would be.
        config = read_config(run_dir, recipe=self.name, of_recipe=True)
        try:
            hp = self.resolve(self.recorded(config["hyperparameters"]))
        except ValueError as error:
            raise CheckpointError(f"{run_dir / CONFIG} does not fit this version of the recipe: "
                                  f"{str(error).rstrip('.')}") from None
        if device is not None:
            hp["device"] = device
        from .array import device_module
        try:
            device_module(hp["device"])
        except RuntimeError as error:
            raise CheckpointError(f"{str(error).rstrip('.')}; load the run on the CPU with --device cpu") from None
        model = self.build_model(hp)
        if weights is None and self.keep == "average" and not (run_dir / WEIGHTS_AVERAGE).exists():
            weights = "best"  # a run from before the recipe averaged its last epochs kept the best epoch's
        tensors = load_weights(run_dir / f"weights-{weights or self.keep}.safetensors")  # its own CheckpointError
        try:
            model.load_parameters(tensors)
        except ValueError as error:
            raise CheckpointError(f"the weights in {run_dir} do not fit the model: {error}") from None
        model.eval()
        return model, hp

    def baseline(self, data, hp):
        """A simple non-LSTM baseline measured on the same test split: ``{name: value}`` (naive forecasts'
        rmse, a kNN's or a logistic regression's accuracy), or ``{}`` (the default) when the recipe has none.
        ``data`` is what ``load_data(hp)`` returned; ``benchmarks/zoo.py`` reports it beside the LSTM."""
        return {}

    def cross_validate(self, hp, folds, progress=True):
        """``folds``-fold cross-validation with the hyperparameters ``hp`` (``lstmzoo evaluate --cv K``): trains
        ``folds`` fresh models and returns their test metrics as ``{name: number}``. Not supported by default."""
        raise UserError(f"recipe {self.name} does not support --cv")

    def target(self, metrics):
        """The recipe's target on the test split, checked against ``evaluate``'s ``metrics``: ``(text, met)``
        such as ``("accuracy >= 0.98", True)``, or None when the recipe states none. The default: the anchor's
        metric at least as good as its value (``>=`` or ``<=`` as ``lstmzoo.metrics.higher_is_better`` says);
        None without an anchor. A recipe whose target is another (a ratio to a baseline) overrides this."""
        if self.anchor is None:
            return None
        from .metrics import higher_is_better
        metric, value = self.anchor.metric, self.anchor.value
        try:
            higher = higher_is_better(metric)
        except ValueError as error:
            raise RecipeError(f"recipe {self.name!r} has no target: {error}; override target()") from None
        met = metrics[metric] >= value if higher else metrics[metric] <= value
        return f"{metric} {'>=' if higher else '<='} {value:g}", met

    def format_prediction(self, result):
        """The text `lstmzoo predict` prints for ``predict``'s result."""
        return "\n".join(f"{key}: {value}" for key, value in result.items())

    @classmethod
    def describe(cls):
        """The metadata as a JSON-serialisable dict (``lstmzoo info --json``)."""
        return {
            "name": cls.name, "application": cls.application, "summary": cls.summary,
            "datasets": [dataclasses.asdict(d) for d in cls.datasets],
            "hyperparameters": {name: {"default": spec.default, "type": spec.type.__name__, "help": spec.help,
                                       **({"choices": list(spec.choices)} if spec.choices else {})}
                                for name, spec in cls.all_hyperparameters().items()},
            "anchor": dataclasses.asdict(cls.anchor) if cls.anchor else None,
            "measured": cls.measured, "preprocessing": cls.preprocessing, "predict_input": cls.predict_input,
            "monitor": cls.monitor, "mode": cls.mode,
        }

    @classmethod
    def predict_options(cls):
        """The keyword-only options ``predict`` accepts (``input``, ``horizon``, ...)."""
        return [p.name for p in inspect.signature(cls.predict).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]


def read_input_file(input, what):
    """The bytes of the file a user named as ``predict``'s input; UserError, one sentence saying to give
    ``what``, when it is not a file, cannot be read or is empty."""
    from pathlib import Path
    path = Path(input)
    if not path.is_file():
        raise UserError(f"{input} is not a file (give {what})")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"{input} cannot be read ({error.strerror or error})") from None
    if not raw.strip():
        raise UserError(f"{input} is empty")
    return raw


def unsafe_name(name):
    """Why ``name`` cannot be a file or folder name inside the data cache (a path, '..', empty), or None."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\0" in name:
        return f"{name!r} is not a file name"
    if "/" in name or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return f"{name!r} is a path, not a file name"
    return None


def contract_problems(recipe):
    """Why ``recipe`` (an instance) breaks the contract, as a list of short phrases (empty when it holds)."""
    if not isinstance(recipe, Recipe):
        return [f"{type(recipe).__name__} is not a subclass of lstmzoo.recipe.Recipe"]
    problems = []
    if not isinstance(recipe.name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", recipe.name):
        problems.append(f"name {recipe.name!r} is not a lower-case name like 'airline-passengers'")
    if recipe.application not in APPLICATIONS:
        problems.append(f"application {recipe.application!r} is not one of {', '.join(APPLICATIONS)}")
    if not isinstance(recipe.summary, str) or not recipe.summary.strip() or "\n" in recipe.summary:
        problems.append("summary must be one non-empty line")
    for entry in recipe.datasets:
        if not isinstance(entry, DataFile):
            problems.append(f"datasets must hold DataFile entries, found {entry!r}")
        elif unsafe_name(entry.dataset) or unsafe_name(entry.filename):
            problems.append(f"dataset file {entry.dataset!r}/{entry.filename!r} must be named by two plain names "
                            "(no folders, no '..'), so that it stays inside the data cache")
        elif not _SHA256.match(entry.sha256):
            problems.append(f"dataset file {entry.filename!r} has no valid sha256")
        elif entry.manifest is not None and not re.fullmatch(r"[\w.]+:[^/\\]+", entry.manifest):
            problems.append(f"dataset folder {entry.filename!r} has manifest {entry.manifest!r}, expected "
                            "'package:filename'")
    for name, spec in recipe.hyperparameters.items():
        if not isinstance(spec, Hyperparameter) or spec.type not in (bool, int, float, str):
            problems.append(f"hyperparameter {name!r} must be a Hyperparameter with a bool, int, float or str "
                            "default")
    if recipe.anchor is not None and not isinstance(recipe.anchor, Anchor):
        problems.append("anchor must be an Anchor or None")
    if recipe.mode not in ("min", "max"):
        problems.append(f"mode must be 'min' or 'max', got {recipe.mode!r}")
    if recipe.keep not in ("best", "last", "average"):
        problems.append(f"keep must be 'best', 'last' or 'average', got {recipe.keep!r}")
    if recipe.keep == "average" and "average_epochs" not in recipe.all_hyperparameters():
        problems.append("keep = 'average' needs an 'average_epochs' hyperparameter (how many last epochs)")
    if type(recipe).make_optimizer is Recipe.make_optimizer and "lr" not in recipe.all_hyperparameters():
        problems.append("uses the default optimizer (Adam), which needs an 'lr' hyperparameter: declare one or "
                        "override make_optimizer")
    missing = [m for m in REQUIRED_METHODS if getattr(type(recipe), m) is getattr(Recipe, m)]
    if type(recipe).train is Recipe.train:
        missing += [m for m in TRAINING_METHODS if getattr(type(recipe), m) is getattr(Recipe, m)]
    if missing:
        problems.append(f"does not implement {', '.join(missing)}")
    return problems
