"""fit(keep="last") and Recipe.keep: the model ends with the last epoch's weights while weights-best.safetensors
and the FitResult stay the best by the monitor; resume is the same as with keep="best"; restore loads the
recipe's kept weights."""

import pytest
from test_train import assert_bit_identical, build, evaluate, make_batches, train_step, weights

from lstmzoo import checkpoint as ckpt
from lstmzoo.train import fit

SCORES = [0.5, 0.9, 0.7, 0.6]          # the best epoch is the 2nd, the last the 4th


def scripted(scores):
    values = iter(scores)
    return lambda model: {"val_accuracy": next(values)}


def train(run_dir, keep, epochs=4, resume=False, scores=SCORES, step=train_step):
    model, optimizer, scheduler = build()
    snapshots = {}
    result = fit(model, optimizer, step, make_batches, scripted(scores), epochs=epochs, run_dir=run_dir,
                 monitor="val_accuracy", mode="max", keep=keep, scheduler=scheduler, resume=resume, progress=False,
                 on_epoch_end=lambda row: snapshots.update({row["epoch"]: {
                     name: value.copy() for name, value in model.parameters().items()}}))
    return model, result, snapshots


def test_keep_last_ends_with_the_last_epoch_and_still_records_the_best(tmp_path):
    model, result, snapshots = train(tmp_path / "last", "last")
    assert (result.best_epoch, result.best_metric, result.epochs_run) == (2, 0.9, 4)
    assert not model.training
    assert_bit_identical(model.parameters(), snapshots[4])
    assert_bit_identical(weights(tmp_path / "last" / ckpt.WEIGHTS_LAST), snapshots[4])
    assert_bit_identical(weights(tmp_path / "last" / ckpt.WEIGHTS_BEST), snapshots[2])

    best_model, best_result, _ = train(tmp_path / "best", "best")
    assert_bit_identical(best_model.parameters(), snapshots[2])            # the same training, the other end
    assert (best_result.best_epoch, best_result.best_metric) == (2, 0.9)
    for name in (ckpt.WEIGHTS_LAST, ckpt.WEIGHTS_BEST, ckpt.OPTIMIZER):
        assert_bit_identical(weights(tmp_path / "last" / name), weights(tmp_path / "best" / name))
    assert ckpt.read_json(tmp_path / "last" / ckpt.STATE) == ckpt.read_json(tmp_path / "best" / ckpt.STATE)


def test_keep_last_resumes_bit_identically_and_a_finished_run_returns_its_last_epoch(tmp_path):
    straight, _, snapshots = train(tmp_path / "straight", "last")
    train(tmp_path / "resumed", "last", epochs=2, scores=SCORES[:2])
    resumed, result, _ = train(tmp_path / "resumed", "last", resume=True, scores=SCORES[2:])
    assert_bit_identical(resumed.parameters(), straight.parameters())
    assert (result.best_epoch, result.epochs_run) == (2, 4)

    def must_not_train(model, batch):
        raise AssertionError("a finished run trained again")

    finished, again, _ = train(tmp_path / "straight", "last", resume=True, scores=[], step=must_not_train)
    assert_bit_identical(finished.parameters(), snapshots[4])
    assert (again.best_epoch, again.epochs_run) == (2, 4)


def test_keep_must_be_best_last_or_average(tmp_path):
    model, optimizer, _ = build()
    with pytest.raises(ValueError, match="keep must be 'best', 'last' or 'average', got 'first'"):
        fit(model, optimizer, train_step, make_batches, evaluate, epochs=1, run_dir=tmp_path, keep="first",
            progress=False)
    assert not (tmp_path / ckpt.STATE).exists()


def test_pendigits_and_spoken_digits_keep_the_last_epoch():
    from lstmzoo.zoo.pendigits import PenDigits
    from lstmzoo.zoo.spoken_digits import SpokenDigits

    from lstmzoo.recipe import contract_problems
    assert PenDigits.keep == SpokenDigits.keep == "last"
    assert PenDigits.monitor == SpokenDigits.monitor == "val_accuracy"

    class Broken(PenDigits):
        keep = "final"
    assert "keep must be 'best', 'last' or 'average', got 'final'" in contract_problems(Broken())


def test_restore_loads_the_kept_weights(tmp_path):
    """Recipe.train passes the recipe's keep to fit, and Recipe.restore's default is the same: `lstmzoo evaluate`
    scores the model training ended with."""
    from lstmzoo.zoo.airline import AirlinePassengers

    class KeepsLast(AirlinePassengers):
        keep = "last"

        def validate(self, model, data, hp):       # worse every epoch: the best is the first, the kept the last
            self.epochs_validated = getattr(self, "epochs_validated", 0) + 1
            return {"val_loss": float(self.epochs_validated)}

    recipe = KeepsLast()
    trained = recipe.train(recipe.resolve({"epochs": 3, "hidden_size": 4, "patience": 0}), tmp_path, progress=False)
    assert (trained.result.best_epoch, trained.result.epochs_run) == (1, 3)
    last, best = weights(tmp_path / ckpt.WEIGHTS_LAST), weights(tmp_path / ckpt.WEIGHTS_BEST)
    assert any(last[name].tobytes() != best[name].tobytes() for name in last)
    assert_bit_identical(trained.model.parameters(), last)
    assert_bit_identical(recipe.restore(tmp_path)[0].parameters(), last)
    assert_bit_identical(recipe.restore(tmp_path, weights="best")[0].parameters(), best)
