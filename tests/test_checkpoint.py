import json
import os

import numpy as np
import pytest

import lstmzoo.random as lz_random
from lstmzoo import checkpoint as ckpt
from lstmzoo.checkpoint import CheckpointError
from lstmzoo.nn import Module


class TwoLayer(Module):
    """A stand-in model whose parameters carry dotted names, like ``head.weight``."""

    def __init__(self, rng):
        super().__init__()
        self.body = Module()
        self.body.add_parameter("weight", rng.standard_normal((4, 3)).astype(np.float32))
        self.head = Module()
        self.head.add_parameter("weight", rng.standard_normal((1, 4)).astype(np.float32))
        self.head.add_parameter("bias", np.zeros(1, np.float32))


class MomentumState:
    """A stand-in optimizer: just the state_dict interface of lstmzoo.optim's optimizers."""

    def __init__(self, model, lr=0.1):
        self.lr = lr
        self.steps = 0
        self.velocity = {name: np.zeros_like(p) for name, p in model.parameters().items()}

    def state_dict(self):
        return {f"velocity.{n}": v for n, v in self.velocity.items()}, {"lr": self.lr, "steps": self.steps}

    def load_state_dict(self, arrays, scalars):
        for name in self.velocity:
            self.velocity[name][...] = arrays[f"velocity.{name}"]
        self.lr, self.steps = scalars["lr"], scalars["steps"]


class Counter:
    """A stand-in scheduler."""

    def __init__(self):
        self.count = 0

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def tmp_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------ weights
def test_weights_round_trip_keeps_names_dtypes_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    params = {
        "lstm.weight_ih_l0": rng.standard_normal((8, 3)).astype(np.float32),
        "lstm.bias_hh_l0_reverse": rng.standard_normal(8),
        "embedding.weight": rng.standard_normal((5, 2)).astype(np.float16),
        "steps": np.array(7, dtype=np.int64),
        "view": rng.standard_normal((6, 6))[::2, ::3],       # not contiguous
    }
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(path, params, {"recipe": "demo"})
    loaded, metadata = ckpt.load_weights_and_metadata(path)
    assert list(loaded) == list(ckpt.load_weights(path)) == sorted(params)
    for name, value in params.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)
    assert metadata["recipe"] == "demo"
    assert tmp_files(tmp_path) == []


def test_module_parameters_save_under_dotted_names(tmp_path):
    model = TwoLayer(np.random.default_rng(0))
    ckpt.save_weights(tmp_path / "m.safetensors", model.parameters())
    loaded = ckpt.load_weights(tmp_path / "m.safetensors")
    assert sorted(loaded) == ["body.weight", "head.bias", "head.weight"]
    other = TwoLayer(np.random.default_rng(1))
    other.load_parameters(loaded)
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(other.parameters()[name], p)


def test_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError):
        ckpt.save_weights(tmp_path / "w.safetensors", {"a": np.zeros(1)}, {"epoch": 3})


def test_crash_before_replace_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(path, {"a": np.zeros(3)})

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    # A file system that refuses is the user's to fix (a full disk, a read-only folder): one sentence.
    with pytest.raises(CheckpointError, match="cannot write .*w.safetensors: simulated"):
        ckpt.save_weights(path, {"a": np.ones(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(ckpt.load_weights(path)["a"], np.zeros(3))
    assert tmp_files(tmp_path) == []


def test_temp_file_left_by_a_hard_crash_is_never_read(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(path, {"a": np.zeros(3)})

    def crash(*args):
        raise KeyboardInterrupt    # a kill: no rename, and (os.unlink patched too) no clean-up either

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_weights(path, {"a": np.ones(3)})
    monkeypatch.undo()
    assert len(tmp_files(tmp_path)) == 1
    np.testing.assert_array_equal(ckpt.load_weights(path)["a"], np.zeros(3))


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as error:
        ckpt.load_weights(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(error.value)


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -1])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(path, {"a": np.arange(20.0), "b": np.ones((3, 3), np.float32)})
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match="w.safetensors"):
        ckpt.load_weights(path)


def test_corrupted_data_is_caught_by_the_checksum(tmp_path):
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(path, {"a": np.arange(20.0)})
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        ckpt.load_weights(path)


def test_corrupted_header(tmp_path):
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(path, {"a": np.arange(20.0)})
    data = bytearray(path.read_bytes())
    data[9] = ord("!")      # inside the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        ckpt.load_weights(path)


@pytest.mark.parametrize("content", [
    b"",
    json.dumps({"weight": [1, 2, 3]}).encode(),
    np.random.default_rng(0).bytes(1000),
    b"PK\x03\x04" + bytes(200),       # what torch.save writes (a zip)
])
def test_foreign_files(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        ckpt.load_weights(path)


def test_torch_loads_our_lstm_weights_and_we_load_torchs(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    from lstmzoo.nn import LSTM

    class Tagger(Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(3, 5, num_layers=2, bidirectional=True)

    model = Tagger()
    path = tmp_path / "weights.safetensors"
    ckpt.save_weights(path, model.parameters())

    state = {name.removeprefix("lstm."): t for name, t in load_file(path).items()}
    reference = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    reference.load_state_dict(state)      # strict: names and shapes must match PyTorch's exactly
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.parameters()[f"lstm.{name}"])

    # And the other way: a file written by PyTorch (no checksum in it) loads as plain NumPy arrays.
    save_file({f"lstm.{n}": t.contiguous() for n, t in reference.state_dict().items()},
              tmp_path / "torch.safetensors")
    Tagger().load_parameters(ckpt.load_weights(tmp_path / "torch.safetensors"))


# -------------------------------------------------------------------------------------------------- JSON
def test_json_round_trip_and_errors(tmp_path):
    path = tmp_path / "state.json"
    ckpt.write_json(path, {"epoch": 3, "lr": 0.1, "rng": lz_random.get_state()})
    assert ckpt.read_json(path)["rng"] == lz_random.get_state()
    with pytest.raises(CheckpointError, match="missing.json does not exist"):
        ckpt.read_json(tmp_path / "missing.json")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="state.json is not valid JSON"):
        ckpt.read_json(path)
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(CheckpointError, match="state.json is not valid JSON"):
        ckpt.read_json(path)


def test_jsonl_append_truncate_and_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert ckpt.read_jsonl(path) == []
    for epoch in (1, 2, 3):
        ckpt.append_jsonl(path, {"epoch": epoch, "loss": 1.0 / epoch})
    with open(path, "a") as f:
        f.write('{"epoch": 4, "lo')          # a crash in the middle of an append
    assert [r["epoch"] for r in ckpt.read_jsonl(path)] == [1, 2, 3]
    assert [r["epoch"] for r in ckpt.truncate_jsonl(path, 2)] == [1, 2]
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]

    path.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(CheckpointError, match="line 2"):
        ckpt.read_jsonl(path)


# -------------------------------------------------------------------------------------------- run folder
def make_training_objects(seed):
    model = TwoLayer(np.random.default_rng(seed))
    optimizer = MomentumState(model)
    for v in optimizer.velocity.values():
        v[...] = seed
    return model, optimizer, Counter()


def assert_same(model_a, model_b):
    for name, p in model_a.parameters().items():
        np.testing.assert_array_equal(model_b.parameters()[name], p)


def save_epoch(run_dir, epoch, seed, save_best=False):
    model, optimizer, scheduler = make_training_objects(seed)
    optimizer.steps, optimizer.lr, scheduler.count = 10 * epoch, 0.1 / epoch, epoch
    lz_random.seed(seed)
    ckpt.save_training_state(run_dir, model, optimizer, scheduler, {"epoch": epoch, "best_epoch": 1},
                             save_best=save_best)
    return model


def test_training_state_round_trip(tmp_path):
    saved = save_epoch(tmp_path, 2, seed=5, save_best=True)
    expected_rng = lz_random.get_state()
    lz_random.seed(123)
    model, optimizer, scheduler = make_training_objects(0)
    state = ckpt.load_training_state(tmp_path, model, optimizer, scheduler)
    assert state["epoch"] == 2 and state["best_epoch"] == 1
    assert_same(saved, model)
    assert optimizer.steps == 20 and optimizer.lr == 0.05 and scheduler.count == 2
    assert all((v == 5).all() for v in optimizer.velocity.values())
    assert lz_random.get_state() == expected_rng
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "optimizer.safetensors", "state.json", "weights-best.safetensors", "weights-last.safetensors"]
    # A PyTorch user opens weights-last directly: same names as model.parameters().
    assert sorted(ckpt.load_weights(tmp_path / ckpt.WEIGHTS_LAST)) == sorted(saved.parameters())


def crash_on_replace(monkeypatch, when):
    """Make the first os.replace for which ``when(dst)`` holds raise, as a kill at that moment would."""
    real_replace = os.replace

    def replace(src, dst):
        if when(str(dst)):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_crash_before_the_commit_loads_the_previous_epoch(tmp_path, monkeypatch):
    first = save_epoch(tmp_path, 1, seed=1)
    crash_on_replace(monkeypatch, lambda dst: dst.endswith("state.json"))
    with pytest.raises(KeyboardInterrupt):
        save_epoch(tmp_path, 2, seed=2, save_best=True)     # staged files of epoch 2 are complete by now
    monkeypatch.undo()
    model, optimizer, scheduler = make_training_objects(0)
    assert ckpt.load_training_state(tmp_path, model, optimizer, scheduler)["epoch"] == 1
    assert_same(first, model)
    assert scheduler.count == 1 and all((v == 1).all() for v in optimizer.velocity.values())
    assert not any(p.name.endswith(".next") for p in tmp_path.iterdir())


def test_crash_after_the_commit_loads_the_new_epoch(tmp_path, monkeypatch):
    save_epoch(tmp_path, 1, seed=1)
    crash_on_replace(monkeypatch, lambda dst: dst.endswith("optimizer.safetensors"))
    with pytest.raises(KeyboardInterrupt):
        second = save_epoch(tmp_path, 2, seed=2, save_best=True)
    monkeypatch.undo()
    second, _, _ = make_training_objects(2)
    model, optimizer, scheduler = make_training_objects(0)
    assert ckpt.load_training_state(tmp_path, model, optimizer, scheduler)["epoch"] == 2
    assert_same(second, model)
    assert scheduler.count == 2 and all((v == 2).all() for v in optimizer.velocity.values())
    best = TwoLayer(np.random.default_rng(0))
    assert ckpt.load_best_weights(tmp_path, best)
    assert_same(second, best)
    assert not any(p.name.endswith(".next") for p in tmp_path.iterdir())


def test_mismatched_files_are_reported_not_loaded(tmp_path):
    save_epoch(tmp_path, 1, seed=1)
    weights_of_epoch_1 = (tmp_path / ckpt.WEIGHTS_LAST).read_bytes()
    save_epoch(tmp_path, 2, seed=2)
    (tmp_path / ckpt.WEIGHTS_LAST).write_bytes(weights_of_epoch_1)
    with pytest.raises(CheckpointError, match="belongs to epoch 1, not to epoch 2"):
        ckpt.load_training_state(tmp_path, *make_training_objects(0))


def test_load_training_state_errors(tmp_path):
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        ckpt.load_training_state(tmp_path, *make_training_objects(0))
    save_epoch(tmp_path, 1, seed=1)
    model = Module()
    model.add_parameter("other", np.zeros(2, np.float32))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        ckpt.load_training_state(tmp_path, model, make_training_objects(0)[1], Counter())


def test_config_records_versions(tmp_path):
    ckpt.write_config(tmp_path, {"recipe": "demo", "hidden_size": 8})
    config = ckpt.read_json(tmp_path / ckpt.CONFIG)
    assert config["recipe"] == "demo" and config["hidden_size"] == 8
    assert set(config["versions"]) == {"lstmzoo", "numpy", "numba", "python"}
    assert config["versions"]["numpy"] == np.__version__
    assert config["created"].endswith("+00:00")
