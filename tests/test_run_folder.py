"""Run folders under attack (issue #13, items 7-11, 14 and 15): one writer at a time, no file written through a
link, config.json and state.json checksummed, no overwriting of someone else's folder, leftovers of a kill
removed, bad hyperparameters and damaged files refused in one sentence, readers that never hang."""

import importlib.util
import json
import math
import os
import re
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner

from lstmzoo import checkpoint as ckpt
from lstmzoo.checkpoint import CheckpointError
from lstmzoo.cli import main
from lstmzoo.errors import UserError

# A tiny model and trainer set-up, as a module of its own so that a second process can train with it too.
TOY = '''
import numpy as np

import lstmzoo.random as lz_random
from lstmzoo.nn import Module
from lstmzoo.train import fit

X = np.random.default_rng(0).standard_normal((32, 2)).astype(np.float32)
Y = X @ np.array([[1.0], [-1.0]], np.float32)


class Line(Module):
    def __init__(self):
        super().__init__()
        self.add_parameter("weight", np.zeros((1, 2), np.float32))

    def forward(self, x):
        self.x = x
        return x @ self._params["weight"].T

    def backward(self, dy):
        self._grads["weight"] += dy.T @ self.x


class SGD:
    def __init__(self, model, lr=0.1):
        self.model, self.lr, self.steps = model, lr, 0
        self.last = np.zeros((1, 2), np.float32)

    def zero_grad(self):
        self.model.zero_grad()

    def step(self):
        for name, p in self.model.parameters().items():
            p -= self.lr * self.model.grads()[name]
        self.steps += 1

    def state_dict(self):
        return {"last": self.last}, {"lr": self.lr, "steps": self.steps}

    def load_state_dict(self, arrays, scalars):
        self.last[...] = arrays["last"]
        self.lr, self.steps = scalars["lr"], scalars["steps"]


def step(model, batch):
    error = model(X) - Y
    model.backward(2 * error / error.size)
    return float((error ** 2).mean()), len(X)


def validate(model):
    return {"val_loss": float(((model(X) - Y) ** 2).mean())}


def train(run_dir, epochs=3, step=step, resume=False, recipe="toy", **kwargs):
    lz_random.seed(0)
    model = Line()
    return fit(model, SGD(model), step, lambda rng: [0, 1], validate, epochs=epochs, run_dir=run_dir,
               resume=resume, progress=False, config={"recipe": recipe, "hyperparameters": {}}, **kwargs)
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_fit.py").write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_fit", folder / "toy_fit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.FOLDER = folder
    return module


def python(code, *args, **kwargs):
    """A second Python process running ``code``, its stdout a pipe."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, text=True, **kwargs)


def folder_bytes(folder):
    """Every file's bytes but the lock file's (which only says who last held the lock)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lstmzoo.lock" and p.is_file()}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_sentence(result, code=2):
    """Exit ``code``, one line on stderr, no traceback; returns the line."""
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and "bug" not in lines[0]
    return lines[0]


def airline_folder(path, state=True, **changes):
    """A run folder of airline-passengers as far as the checks before any training go: its config (with
    ``changes`` to the hyperparameters) and, with ``state``, a committed checkpoint's marker."""
    from lstmzoo.zoo.airline import AirlinePassengers
    path.mkdir(parents=True, exist_ok=True)
    ckpt.write_config(path, {"recipe": "airline-passengers",
                             "hyperparameters": {**AirlinePassengers.resolve(), **changes}})
    if state:
        ckpt.write_checked_json(path / ckpt.STATE, {"epoch": 1, "format": ckpt.FORMAT})
    return path


# ----------------------------------------------------------------------------- item 7: the recipe must match
def test_resume_of_another_recipes_run_is_refused(tmp_path, toy):
    toy.train(tmp_path, epochs=2, recipe="airline-passengers")
    before = folder_bytes(tmp_path)
    with pytest.raises(CheckpointError, match="holds a run of recipe 'airline-passengers', not of 'daily-min"):
        toy.train(tmp_path, epochs=4, resume=True, recipe="daily-min-temperatures")
    assert folder_bytes(tmp_path) == before


def test_cli_resume_of_another_recipes_run_is_one_sentence(tmp_path):
    run_dir = airline_folder(tmp_path / "A")
    before = folder_bytes(run_dir)
    line = assert_one_sentence(cli("train", "daily-min-temperatures", "--out", run_dir, "--resume"))
    assert "holds a run of recipe 'airline-passengers', not of 'daily-min-temperatures'" in line
    assert folder_bytes(run_dir) == before


# ------------------------------------------------------------------------------------ item 8: one writer
HOLD = """
    import sys, time
    from lstmzoo.checkpoint import run_folder_lock
    with run_folder_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
"""


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_lock(tmp_path):
    holder = python(HOLD, tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = rf"in use by another lstmzoo process \(pid {holder.pid}\)"
        with pytest.raises(CheckpointError, match=refused), ckpt.run_folder_lock(tmp_path):
            pass
    finally:
        holder.kill()       # SIGKILL: no clean-up of its own, the OS releases the lock
        holder.wait()
    with ckpt.run_folder_lock(tmp_path):
        pass


def lock_is_free(folder):
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from lstmzoo.checkpoint import CheckpointError, run_folder_lock
        try:
            with run_folder_lock(sys.argv[1]):
                print("free")
        except CheckpointError:
            print("held")
    """), str(folder)], capture_output=True, text=True, check=True)
    return probe.stdout.strip() == "free"


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with ckpt.run_folder_lock(tmp_path):
        with ckpt.run_folder_lock(tmp_path / "." ):     # another path to the same folder
            assert not lock_is_free(tmp_path)
        assert not lock_is_free(tmp_path)     # the inner exit did not release the outer hold
    assert lock_is_free(tmp_path)


SLOW_FIRST_WRITER = """
    import pathlib, sys, time
    sys.path.insert(0, sys.argv[3])
    import toy_fit
    go = pathlib.Path(sys.argv[2])

    def slow(model, batch):
        print("training", flush=True)
        while not go.exists():
            time.sleep(0.05)
        return toy_fit.step(model, batch)

    toy_fit.train(sys.argv[1], epochs=3, step=slow, recipe="first")
    print("done", flush=True)
"""


def test_two_trainings_into_one_folder_the_second_is_refused_the_first_finishes_untouched(tmp_path, toy):
    run_dir, go = tmp_path / "run", tmp_path / "go"
    first = python(SLOW_FIRST_WRITER, run_dir, go, toy.FOLDER)
    try:
        assert first.stdout.readline().strip() == "training"
        with pytest.raises(CheckpointError, match="in use by another lstmzoo process"):
            toy.train(run_dir, epochs=2, recipe="second")
        with pytest.raises(CheckpointError, match="in use by another lstmzoo process"):
            toy.train(run_dir, epochs=2, recipe="first", resume=True)
        line = assert_one_sentence(cli("train", "airline-passengers", "--out", run_dir, "--epochs", "1"))
        assert "in use by another lstmzoo process" in line
        go.touch()
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
        first.wait()
    assert ckpt.read_config(run_dir)["recipe"] == "first"
    assert ckpt.read_state(run_dir)["epoch"] == 3
    assert [row["epoch"] for row in ckpt.read_jsonl(run_dir / ckpt.METRICS)] == [1, 2, 3]
    assert toy.train(run_dir, epochs=3, resume=True, recipe="first").epochs_run == 3


# ---------------------------------------------------------------------------- item 9: links are not followed
def test_save_figure_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    from matplotlib.figure import Figure
    pytest.importorskip("matplotlib")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "forecast.png").symlink_to(outside)
    figure = Figure()
    figure.subplots().plot([1, 2, 3])
    ckpt.save_figure(figure, run_dir / "forecast.png")
    assert outside.read_text() == "keep me"
    assert not (run_dir / "forecast.png").is_symlink()
    assert (run_dir / "forecast.png").read_bytes().startswith(b"\x89PNG")


def test_append_jsonl_never_writes_through_a_link(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    (tmp_path / "metrics.jsonl").symlink_to(outside)
    with pytest.raises(CheckpointError, match="symbolic link"):
        ckpt.append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1})
    assert outside.read_text() == "keep me\n"


def test_a_planted_lock_file_link_is_refused_not_followed(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lstmzoo.lock").symlink_to(outside)
    refused = pytest.raises(CheckpointError, match="cannot use .*run as a run folder")
    with refused, ckpt.run_folder_lock(tmp_path / "run"):
        pass
    assert outside.read_text() == "keep me"


def test_a_resumed_run_replaces_planted_links(tmp_path, toy):
    toy.train(tmp_path, epochs=1)
    outside = tmp_path.parent / f"{tmp_path.name}-precious.png"
    outside.write_bytes(b"keep me")
    (tmp_path / ckpt.LEARNING_CURVE).unlink(missing_ok=True)
    (tmp_path / ckpt.LEARNING_CURVE).symlink_to(outside)
    toy.train(tmp_path, epochs=2, resume=True)
    assert outside.read_bytes() == b"keep me"


# ------------------------------------------------------------------- item 10: config.json and state.json checked
def flips(data):
    """Every single-bit flip of ``data``, as (byte, bit, flipped data)."""
    for index in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[index] ^= 1 << bit
            yield index, bit, bytes(flipped)


def load_state(run_dir, toy):
    model = toy.Line()
    return ckpt.load_training_state(run_dir, model, toy.SGD(model), None)


@pytest.mark.parametrize("name", ["state.json", "config.json"])
def test_every_single_bit_flip_is_refused(tmp_path, toy, name):
    toy.train(tmp_path, epochs=1)
    read = (lambda run_dir: load_state(run_dir, toy)) if name == "state.json" else ckpt.read_config
    path = tmp_path / name
    original = path.read_bytes()
    read(tmp_path)
    loaded = []
    for index, bit, flipped in flips(original):
        path.write_bytes(flipped)
        try:
            read(tmp_path)
            loaded.append((index, bit))
        except CheckpointError as error:
            assert "\n" not in str(error)
    path.write_bytes(original)
    assert loaded == [], f"{len(loaded)} of {8 * len(original)} flips of {name} loaded"


def test_a_flipped_state_is_refused_on_resume_in_one_sentence(tmp_path, toy):
    toy.train(tmp_path, epochs=2)
    path = tmp_path / ckpt.STATE
    data = bytearray(path.read_bytes())
    data[data.index(b'"best_metric"') + 17] ^= 1        # a digit of the best metric
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="state.json is corrupted or was edited"):
        toy.train(tmp_path, epochs=3, resume=True)


def test_files_of_the_format_before_checksums_still_load_and_a_lost_checksum_is_refused(tmp_path, toy):
    toy.train(tmp_path, epochs=1)
    for name in (ckpt.STATE, ckpt.CONFIG):
        current = json.loads((tmp_path / name).read_text())
        del current["sha256"]
        legacy = {key: value for key, value in current.items() if key != "format"}
        if name == ckpt.STATE:
            legacy["format"] = 1
        (tmp_path / name).write_text(json.dumps(legacy))
    assert toy.train(tmp_path, epochs=2, resume=True).epochs_run == 2
    state = json.loads((tmp_path / ckpt.STATE).read_text())
    assert state["format"] == ckpt.FORMAT and "sha256" in state       # written anew: with a checksum
    del state["sha256"]
    (tmp_path / ckpt.STATE).write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="lost its checksum"):
        ckpt.read_state(tmp_path)


# ------------------------------------------------------------ item 11: not a run folder; leftovers of a kill
def test_a_folder_that_is_not_a_run_folder_is_not_overwritten(tmp_path, toy):
    (tmp_path / "config.json").write_text('{"my": "own settings"}\n')
    with pytest.raises(CheckpointError, match="is not empty and is not an lstmzoo run folder"):
        toy.train(tmp_path, epochs=1)
    assert (tmp_path / "config.json").read_text() == '{"my": "own settings"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_cli_refuses_a_non_empty_folder_that_is_not_a_run_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    line = assert_one_sentence(cli("train", "airline-passengers", "--out", tmp_path, "--epochs", "1"))
    assert "is not empty and is not an lstmzoo run folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_run_folder_without_a_checkpoint_may_start_afresh(tmp_path, toy):
    toy.train(tmp_path, epochs=1)
    (tmp_path / ckpt.STATE).unlink()         # as a kill before the first commit leaves it
    assert toy.train(tmp_path, epochs=1).epochs_run == 1


@pytest.mark.parametrize("resume", [False, True])
def test_temporary_files_of_a_kill_are_removed_at_the_next_start(tmp_path, toy, resume):
    toy.train(tmp_path, epochs=1)
    if not resume:
        (tmp_path / ckpt.STATE).unlink()
    leftovers = [".state.json.4242.0badc0de.tmp", ".weights-last.safetensors.17.deadbeef.tmp",
                 ".forecast.png.99.12345678.tmp"]
    for name in leftovers:
        (tmp_path / name).write_bytes(b"half a file")
    ckpt.save_weights(tmp_path / "weights-best.safetensors.next", {"a": np.zeros(1)}, {"lstmzoo.epoch": "7"})
    (tmp_path / "notes.tmp").write_text("not ours")
    toy.train(tmp_path, epochs=2, resume=resume)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(leftovers) and "weights-best.safetensors.next" not in names
    assert "notes.tmp" in names


# --------------------------------------------------------- item 14: bounds, at --set and in a config.json read
BAD_VALUES = [("epochs", 0), ("clip_norm", -1.0), ("clip_norm", float("nan")), ("patience", -1), ("window", 0),
              ("val_size", 0), ("hidden_size", 10_000_000)]


@pytest.mark.parametrize("name, value", BAD_VALUES)
def test_bad_hyperparameters_are_one_sentence_through_resolve_and_a_tampered_config(tmp_path, name, value):
    from lstmzoo.zoo.airline import AirlinePassengers
    with pytest.raises(UserError, match=f"hyperparameter '{name}' must be"):
        AirlinePassengers.resolve({name: str(value)})
    # A config.json edited by hand (no checksum: the format before checksums), and one written intact by a
    # version with other bounds: both are refused by restore and by a resume, in one sentence.
    configs = {"edited": lambda path: (path / ckpt.CONFIG).write_text(json.dumps(
        {"recipe": "airline-passengers", "hyperparameters": {**AirlinePassengers.resolve(), name: value},
         "versions": {}}))}
    if not math.isnan(value):     # NaN cannot be written as standard JSON, so only by hand
        configs["checksummed"] = lambda path: airline_folder(path, state=False, **{name: value})
    for kind, write in configs.items():
        run_dir = airline_folder(tmp_path / kind)
        write(run_dir)
        pattern = "is not valid JSON" if math.isnan(value) else f"hyperparameter '{name}' must be"
        with pytest.raises(CheckpointError, match=pattern) as error:
            AirlinePassengers().restore(run_dir)
        assert "\n" not in str(error.value)
        line = assert_one_sentence(cli("train", "airline-passengers", "--out", run_dir, "--resume"))
        assert re.search(pattern, line)


# ------------------------------------------------------------------------------ item 15: one sentence, no hang
def test_an_unusable_out_is_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    for out, reason in [("/proc/lstmzoo-run", "cannot use /proc/lstmzoo-run as a run folder"),
                        (tmp_path / "file" / "run", "not a directory")]:
        assert reason in assert_one_sentence(cli("train", "airline-passengers", "--out", out, "--epochs", "1"))
    # A read-only folder (root writes anyway, so the refusal is simulated at the system call).
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")) and args and args[0] & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    line = assert_one_sentence(cli("train", "airline-passengers", "--out", tmp_path / "ro", "--epochs", "1"))
    assert "ro as a run folder: permission denied" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into a read-only folder")
def test_a_read_only_out_is_one_sentence(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    line = assert_one_sentence(cli("train", "airline-passengers", "--out", tmp_path / "ro", "--epochs", "1"))
    assert "permission denied" in line


DAMAGED_JSON = {
    "a list": b'["recipe", "airline-passengers"]',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "a huge number": b'{"epoch": 1e999}',
    "a huge integer": b'{"epoch": ' + b"9" * 5000 + b"}",
    "NaN": b'{"epoch": NaN}',
    "not UTF-8": b'{"epoch": "\xff"}',
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_JSON))
def test_a_damaged_config_or_state_is_one_sentence(tmp_path, toy, damage):
    toy.train(tmp_path, epochs=1)
    for name in (ckpt.STATE, ckpt.CONFIG):
        original = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(DAMAGED_JSON[damage])
        with pytest.raises(CheckpointError) as error:
            toy.train(tmp_path, epochs=2, resume=True)
        assert name in str(error.value) and "\n" not in str(error.value)
        (tmp_path / name).write_bytes(original)


STATE_FIELDS = {
    "missing epoch": lambda s: s.pop("epoch"),
    "epoch a string": lambda s: s.update(epoch="1"),
    "epoch a float": lambda s: s.update(epoch=1.0),
    "optimizer a list": lambda s: s.update(optimizer=[0.1]),
    "missing rng": lambda s: s.pop("rng"),
    "rng garbage": lambda s: s.update(rng={"bit_generator": "nonsense"}),
    "optimizer scalars missing": lambda s: s.update(optimizer={}),
    "missing monitor": lambda s: s.pop("monitor"),
    "best_metric a string": lambda s: s.update(best_metric="low"),
    "stopped_early a number": lambda s: s.update(stopped_early=0),
}


@pytest.mark.parametrize("damage", sorted(STATE_FIELDS))
def test_a_state_with_valid_checksum_but_wrong_fields_is_one_sentence(tmp_path, toy, damage):
    """As a bug of a future version, or an edit whose author recomputed the checksum, would leave it."""
    toy.train(tmp_path, epochs=1)
    state = ckpt.read_state(tmp_path)
    STATE_FIELDS[damage](state)
    ckpt.write_checked_json(tmp_path / ckpt.STATE, state)
    with pytest.raises(CheckpointError) as error:
        toy.train(tmp_path, epochs=2, resume=True)
    assert "state.json" in str(error.value) and "\n" not in str(error.value)


def test_a_damaged_config_on_evaluate_and_resume_is_one_sentence(tmp_path):
    run_dir = airline_folder(tmp_path / "air")
    for content in [b"[]", b'{"recipe": "airline-passengers", "versions": {}}',
                    b'{"recipe": "airline-passengers", "hyperparameters": [1], "versions": {}}',
                    b'{"recipe": 7, "hyperparameters": {}, "versions": {}}', DAMAGED_JSON["deep nesting"],
                    DAMAGED_JSON["a huge number"]]:
        (run_dir / ckpt.CONFIG).write_bytes(content)
        assert "config.json" in assert_one_sentence(cli("evaluate", "airline-passengers", "--checkpoint", run_dir))
        assert "config.json" in assert_one_sentence(cli("train", "airline-passengers", "--out", run_dir, "--resume"))


READ_WEIGHTS = """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))    # an unbounded read fails instead of swapping
    from lstmzoo.checkpoint import CheckpointError, load_weights
    try:
        load_weights(sys.argv[1])
    except CheckpointError as error:
        print(error)
"""


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero are POSIX")
@pytest.mark.parametrize("kind", ["directory", "fifo", "link to /dev/zero"])
def test_weights_that_are_not_a_regular_file_are_refused_at_once(tmp_path, kind):
    path = tmp_path / "weights-best.safetensors"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    started = time.monotonic()
    reader = python(READ_WEIGHTS, path)
    try:
        out, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert time.monotonic() - started < 60
    assert "is not a regular file" in out and reader.returncode == 0


def test_cli_evaluate_with_weights_that_are_a_directory_is_one_sentence(tmp_path):
    run_dir = airline_folder(tmp_path / "air")
    (run_dir / ckpt.WEIGHTS_BEST).mkdir()
    line = assert_one_sentence(cli("evaluate", "airline-passengers", "--checkpoint", run_dir))
    assert "weights-best.safetensors is not a regular file" in line
    assert stat.S_ISDIR(os.stat(run_dir / ckpt.WEIGHTS_BEST).st_mode)


# ------------------------------------------------------------------ item 13: no non-standard JSON from predict
def test_predict_json_never_prints_nan_or_infinity(tmp_path, monkeypatch):
    from lstmzoo.zoo.airline import AirlinePassengers
    run_dir = tmp_path / "air"
    trained = cli("train", "airline-passengers", "--out", run_dir, "--epochs", "1")
    assert trained.exit_code == 0, trained.output
    monkeypatch.setattr(AirlinePassengers, "predict",
                        lambda self, model, hp, out_dir, *, input=None, horizon=None, plot=None:
                        {"forecast": [1.0, float("nan"), float("inf")]})
    line = assert_one_sentence(cli("predict", "airline-passengers", "--checkpoint", run_dir, "--json"), code=1)
    assert "NaN or infinite" in line
