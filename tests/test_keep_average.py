"""fit(keep="average", average=k): the model ends with the mean of the weights of the last k epochs (checkpoint
averaging), kept in weights-average.safetensors, while weights-best, weights-last and the FitResult are what they
are without it; the last epochs' weights wait in weights-epoch-N files, so a resumed run averages the same epochs
as one that ran straight through. multi30k-en-de keeps the mean of its last 3 epochs."""

import numpy as np
import pytest
from test_keep_last import SCORES, scripted
from test_train import assert_bit_identical, build, make_batches, train_step, weights

from lstmzoo import checkpoint as ckpt
from lstmzoo.checkpoint import CheckpointError
from lstmzoo.train import fit


def train(run_dir, average, keep="average", epochs=4, resume=False, scores=SCORES, step=train_step):
    model, optimizer, scheduler = build()
    snapshots = {}
    result = fit(model, optimizer, step, make_batches, scripted(scores), epochs=epochs, run_dir=run_dir,
                 monitor="val_accuracy", mode="max", keep=keep, scheduler=scheduler, resume=resume, progress=False,
                 average=average, on_epoch_end=lambda row: snapshots.update({row["epoch"]: {
                     name: value.copy() for name, value in model.parameters().items()}}))
    return model, result, snapshots


def mean(snapshots, epochs):
    """The mean as fit computes it: summed in float64 in epoch order, divided, back to each parameter's dtype."""
    first = snapshots[epochs[0]]
    total = {name: value.astype(np.float64) for name, value in first.items()}
    for epoch in epochs[1:]:
        for name, value in snapshots[epoch].items():
            total[name] += value
    return {name: (value / len(epochs)).astype(first[name].dtype) for name, value in total.items()}


def epoch_files(run_dir):
    return sorted(p.name for p in run_dir.glob("weights-epoch-*.safetensors"))


def test_keep_average_ends_with_the_mean_of_the_last_epochs(tmp_path):
    model, result, snapshots = train(tmp_path / "run", 3)
    assert (result.best_epoch, result.best_metric, result.epochs_run) == (2, 0.9, 4)
    assert not model.training
    averaged = mean(snapshots, [2, 3, 4])
    assert_bit_identical(model.parameters(), averaged)
    assert_bit_identical(weights(tmp_path / "run" / ckpt.WEIGHTS_AVERAGE), averaged)
    assert_bit_identical(weights(tmp_path / "run" / ckpt.WEIGHTS_LAST), snapshots[4])
    assert_bit_identical(weights(tmp_path / "run" / ckpt.WEIGHTS_BEST), snapshots[2])
    for name in averaged:       # a mean of three different epochs, not one of them
        assert all(averaged[name].tobytes() != snapshots[e][name].tobytes() for e in (2, 3, 4)), name
    assert epoch_files(tmp_path / "run") == [f"weights-epoch-{e}.safetensors" for e in (2, 3, 4)]

    # The same training ends elsewhere with keep="last" and no averaging: same checkpoint files, no average.
    last, _, _ = train(tmp_path / "last", None, keep="last")
    assert_bit_identical(last.parameters(), snapshots[4])
    assert not (tmp_path / "last" / ckpt.WEIGHTS_AVERAGE).exists() and not epoch_files(tmp_path / "last")
    for name in (ckpt.WEIGHTS_LAST, ckpt.WEIGHTS_BEST, ckpt.OPTIMIZER):
        assert_bit_identical(weights(tmp_path / "run" / name), weights(tmp_path / "last" / name))


def test_an_average_over_more_epochs_than_ran_takes_them_all_and_one_epoch_is_the_last(tmp_path):
    model, _, snapshots = train(tmp_path / "all", 10)
    assert_bit_identical(model.parameters(), mean(snapshots, [1, 2, 3, 4]))
    one, _, snapshots = train(tmp_path / "one", 1)
    assert_bit_identical(one.parameters(), snapshots[4])


def test_keep_average_resumes_bit_identically_and_a_finished_run_returns_its_average(tmp_path):
    straight, _, snapshots = train(tmp_path / "straight", 3)
    train(tmp_path / "resumed", 3, epochs=2, scores=SCORES[:2])
    resumed, result, _ = train(tmp_path / "resumed", 3, resume=True, scores=SCORES[2:])
    assert_bit_identical(resumed.parameters(), straight.parameters())
    assert_bit_identical(weights(tmp_path / "resumed" / ckpt.WEIGHTS_AVERAGE), straight.parameters())
    assert (result.best_epoch, result.epochs_run) == (2, 4)

    def must_not_train(model, batch):
        raise AssertionError("a finished run trained again")

    finished, _, _ = train(tmp_path / "straight", 3, resume=True, scores=[], step=must_not_train)
    assert_bit_identical(finished.parameters(), mean(snapshots, [2, 3, 4]))


def test_a_missing_epoch_file_is_one_sentence_and_a_fresh_run_clears_stale_ones(tmp_path):
    train(tmp_path / "run", 3)
    (tmp_path / "run" / "weights-epoch-3.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights-epoch-3.safetensors is missing, so the weights of epochs 2-4 "
                                              "cannot be averaged"):
        train(tmp_path / "run", 3, resume=True, scores=[])

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    ckpt.write_config(fresh, {"recipe": "test"})     # a run folder whose run never committed a checkpoint
    ckpt.save_epoch_weights(fresh, {"w": np.zeros(2, np.float32)}, 9)
    train(fresh, 2)
    assert epoch_files(fresh) == ["weights-epoch-3.safetensors", "weights-epoch-4.safetensors"]


def test_a_folder_of_epoch_files_alone_is_not_ours_to_clear(tmp_path):
    """A fresh run removes stale epoch weights only from a run folder (config.json): files of that name in a folder
    of something else are refused like any other entry, and left as they were."""
    ckpt.save_epoch_weights(tmp_path, {"w": np.zeros(2, np.float32)}, 1)
    with pytest.raises(CheckpointError, match="is not empty and is not an lstmzoo run folder"):
        train(tmp_path, 2)
    assert epoch_files(tmp_path) == ["weights-epoch-1.safetensors"]


@pytest.mark.parametrize("keep, average, message", [
    ("average", None, "keep='average' needs average"),
    ("average", 0, "average must be None or an integer of at least 1"),
    ("last", 2.5, "average must be None or an integer of at least 1")])
def test_bad_average_arguments_are_refused_before_anything_is_written(tmp_path, keep, average, message):
    model, optimizer, _ = build()
    with pytest.raises(ValueError, match=message):
        fit(model, optimizer, train_step, make_batches, scripted(SCORES), epochs=1, run_dir=tmp_path, keep=keep,
            average=average, monitor="val_accuracy", mode="max", progress=False)
    assert not list(tmp_path.iterdir())


def test_multi30k_keeps_the_mean_of_its_last_three_epochs():
    from lstmzoo.zoo.multi30k import Multi30kEnDe

    from lstmzoo.recipe import contract_problems
    assert Multi30kEnDe.keep == "average" and Multi30kEnDe.resolve()["average_epochs"] == 3
    assert contract_problems(Multi30kEnDe()) == []

    class Broken(Multi30kEnDe):
        hyperparameters = {k: v for k, v in Multi30kEnDe.hyperparameters.items() if k != "average_epochs"}
    assert "keep = 'average' needs an 'average_epochs' hyperparameter" in " ".join(contract_problems(Broken()))


def test_a_recipe_that_averages_restores_the_average_and_an_older_run_its_best(tmp_path):
    """Recipe.train passes average_epochs to fit; restore loads weights-average, and in a run folder without one
    (trained before the recipe averaged) the best epoch's weights, which that run kept."""
    from lstmzoo.zoo.airline import AirlinePassengers

    from lstmzoo.recipe import Hyperparameter

    class Averages(AirlinePassengers):
        keep = "average"
        hyperparameters = {**AirlinePassengers.hyperparameters,
                           "average_epochs": Hyperparameter(2, "last epochs averaged", low=1, high=100)}

    recipe = Averages()
    trained = recipe.train(recipe.resolve({"epochs": 3, "hidden_size": 4, "patience": 0}), tmp_path, progress=False)
    average = weights(tmp_path / ckpt.WEIGHTS_AVERAGE)
    assert_bit_identical(trained.model.parameters(), average)
    assert ckpt.load_weights_and_metadata(tmp_path / ckpt.WEIGHTS_AVERAGE)[1]["epochs"] == "2,3"
    assert_bit_identical(recipe.restore(tmp_path)[0].parameters(), average)
    (tmp_path / ckpt.WEIGHTS_AVERAGE).unlink()
    assert_bit_identical(recipe.restore(tmp_path)[0].parameters(), weights(tmp_path / ckpt.WEIGHTS_BEST))
