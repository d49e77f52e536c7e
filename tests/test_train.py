import io
import json
import os
import sys

import numpy as np
import pytest

import lstmzoo.random as lz_random
from lstmzoo import checkpoint as ckpt
from lstmzoo.batching import minibatch_indices
from lstmzoo.checkpoint import CheckpointError
from lstmzoo.nn import Module
from lstmzoo.train import TrainingError, fit

# ------------------------------------------------------------------ stand-ins, independent of lstmzoo.optim
N_FEATURES = 3


class NoisyRegressor(Module):
    """y = x W^T + b, with input noise from the shared RNG while training: resuming must restore the RNG."""

    def __init__(self):
        super().__init__()
        rng = lz_random.rng()
        self.add_parameter("weight", rng.standard_normal((1, N_FEATURES)).astype(np.float32))
        self.add_parameter("bias", np.zeros(1, np.float32))

    def forward(self, x):
        if self.training:
            x = x + 0.01 * lz_random.rng().standard_normal(x.shape).astype(np.float32)
        self.x = x
        return x @ self._params["weight"].T + self._params["bias"]

    def backward(self, dy):
        self._grads["weight"] += dy.T @ self.x
        self._grads["bias"] += dy.sum(0)


class MomentumSGD:
    def __init__(self, model, lr=0.1, momentum=0.9):
        self.model, self.lr, self.momentum, self.steps = model, lr, momentum, 0
        self.velocity = {name: np.zeros_like(p) for name, p in model.parameters().items()}

    def zero_grad(self):
        self.model.zero_grad()

    def step(self):
        grads = self.model.grads()
        for name, p in self.model.parameters().items():
            self.velocity[name] *= self.momentum
            self.velocity[name] += grads[name]
            p -= self.lr * self.velocity[name]
        self.steps += 1

    def state_dict(self):
        return dict(self.velocity), {"lr": self.lr, "steps": self.steps}

    def load_state_dict(self, arrays, scalars):
        for name, v in self.velocity.items():
            v[...] = arrays[name]
        self.lr, self.steps = scalars["lr"], scalars["steps"]


class HalveEvery:
    def __init__(self, optimizer, every):
        self.optimizer, self.every, self.epochs = optimizer, every, 0

    def step(self, metric=None):
        self.epochs += 1
        if self.epochs % self.every == 0:
            self.optimizer.lr /= 2

    def state_dict(self):
        return {"epochs": self.epochs}

    def load_state_dict(self, state):
        self.epochs = state["epochs"]


# ---------------------------------------------------------------------------------------------- the problem
def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    y = x @ np.array([[1.5], [-2.0], [0.5]], np.float32) + 0.3
    return x, y.astype(np.float32)


TRAIN, VAL = make_data(64, 0), make_data(32, 1)


def make_batches(rng):
    x, y = TRAIN
    return [(x[i], y[i]) for i in minibatch_indices(len(x), 16, rng)]


def train_step(model, batch):
    x, y = batch
    error = model(x) - y
    model.backward(2 * error / error.size)
    return float((error ** 2).mean()), len(x)


def evaluate(model):
    x, y = VAL
    return {"val_loss": float(((model(x) - y) ** 2).mean())}


def build(seed=0, lr=0.05):
    lz_random.seed(seed)
    model = NoisyRegressor()
    optimizer = MomentumSGD(model, lr=lr)
    return model, optimizer, HalveEvery(optimizer, every=2)


def run(run_dir, epochs, resume=False, step=train_step, **kwargs):
    model, optimizer, scheduler = build()
    result = fit(model, optimizer, step, make_batches, evaluate, epochs=epochs, run_dir=run_dir,
                 scheduler=scheduler, resume=resume, progress=False, **kwargs)
    return model, result


def weights(path):
    return ckpt.load_weights(path)


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name


def deterministic(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "items_per_second")} for row in history]


# --------------------------------------------------------------------------------------------------- tests
def test_fit_learns_logs_and_checkpoints(tmp_path):
    model, result = run(tmp_path / "run", epochs=6, config={"recipe": "toy", "lr": 0.05})
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] / 10
    assert result.epochs_run == 6 and len(result.history) == 6
    assert not model.training  # the returned model is scored as it will be used: no dropout, no noise
    rows = [json.loads(line) for line in (tmp_path / "run" / ckpt.METRICS).read_text().splitlines()]
    assert rows == result.history
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds", "items_per_second"}
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row["lr"] for row in rows] == [0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert rows[0]["items_per_second"] > 0
    assert result.best_metric == min(row["val_loss"] for row in rows)
    assert result.best_epoch == 1 + int(np.argmin([row["val_loss"] for row in rows]))
    config = ckpt.read_json(tmp_path / "run" / ckpt.CONFIG)
    assert config["recipe"] == "toy" and "numpy" in config["versions"]
    state = ckpt.read_json(tmp_path / "run" / ckpt.STATE)
    assert state["epoch"] == 6 and state["best_epoch"] == result.best_epoch
    assert_bit_identical(weights(tmp_path / "run" / ckpt.WEIGHTS_BEST), model.parameters())


def test_early_stopping_restores_the_best_weights(tmp_path):
    scripted = iter([3.0, 2.0, 1.0, 1.5, 1.2, 0.5])
    snapshots = {}

    def scripted_evaluate(model):
        return {"val_score": next(scripted)}

    model, optimizer, _ = build()
    result = fit(model, optimizer, train_step, make_batches, scripted_evaluate, epochs=10,
                 run_dir=tmp_path, monitor="val_score", patience=2, progress=False,
                 on_epoch_end=lambda row: snapshots.update({row["epoch"]: model.parameters()["weight"] + 0}))
    assert result.epochs_run == 5 and result.best_epoch == 3 and result.best_metric == 1.0
    assert [row["val_score"] for row in result.history] == [3.0, 2.0, 1.0, 1.5, 1.2]
    np.testing.assert_array_equal(model.parameters()["weight"], snapshots[3])
    assert ckpt.read_json(tmp_path / ckpt.STATE)["stopped_early"]


def test_mode_max(tmp_path):
    scores = iter([0.5, 0.9, 0.7])
    model, optimizer, _ = build()
    result = fit(model, optimizer, train_step, make_batches, lambda m: {"val_accuracy": next(scores)},
                 epochs=3, run_dir=tmp_path, monitor="val_accuracy", mode="max", progress=False)
    assert (result.best_epoch, result.best_metric) == (2, 0.9)


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    straight, straight_result = run(tmp_path / "straight", epochs=6)
    run(tmp_path / "resumed", epochs=3)
    resumed, resumed_result = run(tmp_path / "resumed", epochs=6, resume=True)
    assert_bit_identical(weights(tmp_path / "straight" / ckpt.WEIGHTS_LAST),
                         weights(tmp_path / "resumed" / ckpt.WEIGHTS_LAST))
    assert_bit_identical(straight.parameters(), resumed.parameters())
    assert deterministic(straight_result.history) == deterministic(resumed_result.history)
    assert straight_result.best_epoch == resumed_result.best_epoch


def interrupt_at(epoch, batch):
    calls = {"n": 0}

    def step(model, b):
        calls["n"] += 1
        if calls["n"] == (epoch - 1) * 4 + batch:     # 4 batches per epoch
            raise KeyboardInterrupt
        return train_step(model, b)

    return step


def interrupt_after(epoch, run_dir, step):
    """``step``, raising KeyboardInterrupt in the first batch after ``epoch``'s checkpoint is committed."""
    def wrapped(model, batch):
        if ckpt.has_checkpoint(run_dir) and ckpt.read_json(run_dir / ckpt.STATE)["epoch"] == epoch:
            raise KeyboardInterrupt
        return step(model, batch)

    return wrapped


def test_interrupted_then_resumed_is_bit_identical(tmp_path):
    straight, _ = run(tmp_path / "straight", epochs=6)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", epochs=6, step=interrupt_at(epoch=4, batch=2))
    assert ckpt.read_json(tmp_path / "resumed" / ckpt.STATE)["epoch"] == 3
    assert len(ckpt.read_jsonl(tmp_path / "resumed" / ckpt.METRICS)) == 3
    resumed, result = run(tmp_path / "resumed", epochs=6, resume=True)
    assert_bit_identical(straight.parameters(), resumed.parameters())
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("crash_at", ["state.json", "optimizer.safetensors"])
def test_crash_inside_a_checkpoint_then_resume_is_bit_identical(tmp_path, monkeypatch, crash_at):
    """A kill while epoch 4's checkpoint is written: before (state.json) or after (renames) its commit."""
    straight, _ = run(tmp_path / "straight", epochs=6)
    real_replace, replaced = os.replace, {"n": 0}

    def replace(src, dst):
        if str(dst).endswith(os.sep + crash_at):
            replaced["n"] += 1
            if replaced["n"] == 4:
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", epochs=6)
    monkeypatch.undo()
    # The metrics row of epoch 4 was appended before the checkpoint began.
    assert len(ckpt.read_jsonl(tmp_path / "resumed" / ckpt.METRICS)) == 4
    resumed, result = run(tmp_path / "resumed", epochs=6, resume=True)
    assert_bit_identical(straight.parameters(), resumed.parameters())
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5, 6]


def test_resuming_a_finished_run_just_returns(tmp_path):
    _, first = run(tmp_path, epochs=3)

    def must_not_train(model, batch):
        raise AssertionError("a finished run trained again")

    model, again = run(tmp_path, epochs=3, resume=True, step=must_not_train)
    assert (again.best_epoch, again.best_metric, again.epochs_run) == (first.best_epoch, first.best_metric, 3)
    assert_bit_identical(model.parameters(), weights(tmp_path / ckpt.WEIGHTS_BEST))


def test_run_dir_errors(tmp_path):
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        run(tmp_path / "empty", epochs=2, resume=True)
    run(tmp_path / "used", epochs=1)
    with pytest.raises(CheckpointError, match="already holds a checkpoint; pass resume"):
        run(tmp_path / "used", epochs=2)
    with pytest.raises(CheckpointError, match="monitor"):
        run(tmp_path / "used", epochs=2, resume=True, monitor="val_loss", mode="max")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def diverging(model, batch):
        loss, n = train_step(model, batch)
        state = tmp_path / ckpt.STATE
        return (float("nan") if state.exists() and ckpt.read_json(state)["epoch"] == 2 else loss), n

    with pytest.raises(TrainingError, match="became nan at batch 1 of epoch 3/5.*epoch 2"):
        run(tmp_path, epochs=5, step=diverging)
    assert ckpt.read_json(tmp_path / ckpt.STATE)["epoch"] == 2
    run(tmp_path, epochs=2, resume=True)    # the checkpoint loads


def test_unknown_monitor(tmp_path):
    with pytest.raises(ValueError, match="val_accuracy"):
        run(tmp_path, epochs=1, monitor="val_accuracy")


def test_learning_curve_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    run(tmp_path, epochs=2)
    assert (tmp_path / ckpt.LEARNING_CURVE).read_bytes().startswith(b"\x89PNG")


def test_no_matplotlib_no_curve(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)    # import fails
    model, optimizer, _ = build()
    fit(model, optimizer, train_step, make_batches, evaluate, epochs=1, run_dir=tmp_path)
    assert not (tmp_path / ckpt.LEARNING_CURVE).exists()
    assert "matplotlib is not installed" in capsys.readouterr().err


# ------------------------------------------------------ end to end with the real layers, optimizer, schedule
def test_real_lstm_adam_schedule_resume_is_bit_identical(tmp_path):
    """LSTM + Linear + MSELoss + Adam + ReduceLROnPlateau + clipping + dropout, padded variable lengths."""
    from lstmzoo.batching import bucket_by_length, pad_sequences
    from lstmzoo.nn import LSTM, Linear, MSELoss
    from lstmzoo.optim import Adam
    from lstmzoo.schedules import ReduceLROnPlateau

    data_rng = np.random.default_rng(0)
    seqs = [data_rng.standard_normal((int(n), 2)).astype(np.float32) for n in data_rng.integers(2, 9, 48)]
    targets = np.array([[s[:, 0].sum() - s[:, 1].mean()] for s in seqs], np.float32)

    class SequenceRegressor(Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(2, 8, num_layers=2, dropout=0.2)
            self.head = Linear(8, 1)
            self.loss = MSELoss()

        def step(self, batch):
            x, lengths, y = batch
            out, (h_n, c_n) = self.lstm(x, lengths=lengths)
            loss = self.loss.forward(self.head(h_n[-1]), y)
            dh_n = np.zeros_like(h_n)
            dh_n[-1] = self.head.backward(self.loss.backward())
            self.lstm.backward(np.zeros_like(out), dh_n=dh_n)
            return loss, len(y)

    def make_batches(rng):
        batches = []
        for index in bucket_by_length([len(s) for s in seqs], 12, rng, chunk_batches=2):
            x, lengths = pad_sequences([seqs[i] for i in index])
            batches.append((x, lengths, targets[index]))
        return batches

    def evaluate(model):
        x, lengths = pad_sequences(seqs[:16])
        h_n = model.lstm(x, lengths=lengths)[1][0]
        return {"val_loss": model.loss.forward(model.head(h_n[-1]), targets[:16])}

    def train(run_dir, epochs, resume=False, step=SequenceRegressor.step):
        lz_random.seed(42)
        model = SequenceRegressor()
        optimizer = Adam(model, lr=0.02)
        scheduler = ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
        fit(model, optimizer, step, make_batches, evaluate, epochs=epochs, run_dir=run_dir, clip_norm=1.0,
            scheduler=scheduler, resume=resume, progress=False, config={"recipe": "toy-lstm"})
        return model

    straight = train(tmp_path / "straight", epochs=6)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", epochs=6,
              step=interrupt_after(3, tmp_path / "resumed", SequenceRegressor.step))
    resumed = train(tmp_path / "resumed", epochs=6, resume=True)
    assert_bit_identical(straight.parameters(), resumed.parameters())
    assert_bit_identical(weights(tmp_path / "straight" / ckpt.WEIGHTS_LAST),
                         weights(tmp_path / "resumed" / ckpt.WEIGHTS_LAST))
    history = ckpt.read_jsonl(tmp_path / "straight" / ckpt.METRICS)
    assert deterministic(history) == deterministic(ckpt.read_jsonl(tmp_path / "resumed" / ckpt.METRICS))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert len({row["lr"] for row in history}) > 1, "the plateau schedule never lowered lr"


# ------------------------------------------------------- progress: a bar on a terminal, plain lines in a log (#13 item 6)
class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_plain_line_per_epoch_and_no_bar(tmp_path, capsys):
    model, optimizer, _ = build()
    fit(model, optimizer, train_step, make_batches, evaluate, epochs=3, run_dir=tmp_path)   # progress on
    err = capsys.readouterr().err       # captured: not a terminal
    lines = [line for line in err.splitlines() if "matplotlib" not in line]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2", "epoch 3"]
    assert all("train_loss" in line and "val_loss" in line for line in lines)
    assert "\r" not in err and "batch/s" not in err and "it/s" not in err


def test_a_terminal_gets_the_batch_bar_and_the_epoch_lines(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model, optimizer, _ = build()
    fit(model, optimizer, train_step, make_batches, evaluate, epochs=2, run_dir=tmp_path)
    shown = terminal.getvalue()
    assert "\r" in shown and "epoch 1/2" in shown and "/4" in shown      # the bar: batches of 4
    assert "epoch 1: train_loss" in shown and "epoch 2: train_loss" in shown


# ------------------------------------------------------------------------- divergence (#13 item 13)
def strict_rows(path):
    """metrics.jsonl as a strict parser (jq, JavaScript) reads it: NaN and Infinity are errors."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("cause", ["huge lr", "inf reaching a layer"])
def test_a_diverging_lstm_stops_with_the_trainers_sentence_not_a_layers_error(tmp_path, cause):
    """With a huge learning rate the gradients overflow; where the overflow happens inside train_step, between
    the loss and the LSTM's backward, the layer refuses it ("dh_n contains NaN or inf"). Either way the user
    gets the trainer's TrainingError."""
    from lstmzoo.nn import LSTM, Linear, MSELoss
    from lstmzoo.optim import SGD

    data_rng = np.random.default_rng(0)
    x = data_rng.standard_normal((6, 32, 2)).astype(np.float32)
    y = (100 * data_rng.standard_normal((32, 1))).astype(np.float32)

    class Regressor(Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head, self.loss = LSTM(2, 8), Linear(8, 1), MSELoss()

    def step(model, batch):
        out, (h_n, _) = model.lstm(x)
        loss = model.loss.forward(model.head(h_n[-1]), y)
        dh_n = np.zeros_like(h_n)
        dh_n[-1] = model.head.backward(model.loss.backward())
        if cause == "inf reaching a layer" and ckpt.has_checkpoint(tmp_path):
            dh_n[-1, 0, 0] = np.inf
        model.lstm.backward(np.zeros_like(out), dh_n=dh_n)
        return loss, len(y)

    def validate(model):
        return {"val_loss": float(model.loss.forward(model.head(model.lstm(x)[1][0][-1]), y))}

    lz_random.seed(0)
    model = Regressor()
    with pytest.raises(TrainingError, match="diverged") as error:
        fit(model, SGD(model, lr=1e6 if cause == "huge lr" else 0.01), step, lambda rng: [0, 1, 2, 3], validate, epochs=5, run_dir=tmp_path,
            progress=False)
    assert "\n" not in str(error.value)
    if cause == "inf reaching a layer":
        assert "dh_n contains NaN or inf" in str(error.value) and "epoch 2/5" in str(error.value)
    rows = strict_rows(tmp_path / ckpt.METRICS)
    state = ckpt.read_json(tmp_path / ckpt.STATE) if ckpt.has_checkpoint(tmp_path) else {"epoch": 0}
    assert len(rows) == state["epoch"]


def test_a_recipes_own_value_error_is_not_taken_for_divergence(tmp_path):
    """Only the layers' NonFiniteError means "diverged": a ValueError of a recipe's own code, even one that uses
    the same words, passes through unchanged (the CLI reports it as the bug it is)."""
    from lstmzoo.errors import NonFiniteError
    from lstmzoo.nn import LSTM, Linear
    from lstmzoo.optim import SGD

    assert issubclass(NonFiniteError, ValueError)
    with pytest.raises(NonFiniteError):
        LSTM(2, 3)(np.full((4, 1, 2), np.nan, dtype=np.float32))
    model = Linear(2, 1)

    def step(model, batch):
        raise ValueError("my own check: x contains NaN or inf")

    with pytest.raises(ValueError, match="my own check") as error:
        fit(model, SGD(model, lr=0.1), step, lambda rng: [0], lambda model: {"val_loss": 1.0}, epochs=1,
            run_dir=tmp_path, progress=False)
    assert not isinstance(error.value, TrainingError)


def test_any_non_finite_metric_stops_before_it_is_logged_or_checkpointed(tmp_path):
    values = iter([1.0, float("inf"), 0.5])

    def validate(model):     # the monitored metric stays finite; another one of the row does not
        return {"val_loss": 1.0, "val_rmse": next(values)}

    model, optimizer, scheduler = build()
    with pytest.raises(TrainingError, match="val_rmse became inf in epoch 2.*checkpoint of epoch 1"):
        fit(model, optimizer, train_step, make_batches, validate, epochs=3, run_dir=tmp_path, scheduler=scheduler,
            progress=False)
    assert [row["epoch"] for row in strict_rows(tmp_path / ckpt.METRICS)] == [1]
    assert ckpt.read_json(tmp_path / ckpt.STATE)["epoch"] == 1
    run(tmp_path, epochs=1, resume=True)    # the last finite checkpoint loads


@pytest.mark.parametrize("clip_norm", [None, 1.0])
def test_a_non_finite_gradient_stops_even_when_the_loss_is_finite(tmp_path, clip_norm):
    def poisoned(model, batch):
        loss, n = train_step(model, batch)
        if ckpt.has_checkpoint(tmp_path):
            model.grads()["weight"][0, 0] = np.inf
        return loss, n

    with pytest.raises(TrainingError, match="its gradients became NaN or infinite at batch 1 of epoch 2/3"):
        run(tmp_path, epochs=3, step=poisoned, clip_norm=clip_norm)
    assert all(np.isfinite(w).all() for w in weights(tmp_path / ckpt.WEIGHTS_LAST).values())


def test_weights_that_overflow_in_the_last_step_are_not_checkpointed(tmp_path):
    model, optimizer, _ = build()
    real_step = optimizer.step

    def overflowing_step():
        real_step()
        if optimizer.steps == 8:        # the last step of epoch 2
            model.parameters()["bias"][0] = np.inf

    optimizer.step = overflowing_step
    with pytest.raises(TrainingError, match="weights became NaN or infinite in epoch 2"):
        fit(model, optimizer, train_step, make_batches, None, epochs=3, run_dir=tmp_path, monitor="train_loss",
            progress=False)
    assert ckpt.read_json(tmp_path / ckpt.STATE)["epoch"] == 1


def test_the_run_folder_writers_never_write_non_standard_json(tmp_path):
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            ckpt.write_json(tmp_path / "a.json", {"x": value})
        with pytest.raises(ValueError):
            ckpt.write_checked_json(tmp_path / "b.json", {"x": value})
        with pytest.raises(ValueError):
            ckpt.append_jsonl(tmp_path / "c.jsonl", {"epoch": 1, "x": value})
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------- fit's own argument checks (#13 item 14)
@pytest.mark.parametrize("bad", [{"epochs": 0}, {"epochs": -1}, {"epochs": 2.5}, {"clip_norm": -1.0},
                                 {"clip_norm": float("nan")}, {"patience": -1}])
def test_fit_refuses_nonsense_epochs_clip_norm_and_patience(tmp_path, bad):
    model, optimizer, _ = build()
    kwargs = {"epochs": 2, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(model, optimizer, train_step, make_batches, evaluate, run_dir=tmp_path, progress=False, **kwargs)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_patience_zero_never_stops_and_clip_norm_zero_does_not_clip(tmp_path):
    worse = iter([1.0, 2.0, 3.0, 4.0])
    model, optimizer, _ = build()
    result = fit(model, optimizer, train_step, make_batches, lambda m: {"val_loss": next(worse)}, epochs=4,
                 run_dir=tmp_path / "patience", patience=0, progress=False)
    assert result.epochs_run == 4
    off, _ = run(tmp_path / "off", epochs=2)
    zero, _ = run(tmp_path / "zero", epochs=2, clip_norm=0)
    assert_bit_identical(off.parameters(), zero.parameters())
