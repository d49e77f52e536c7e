"""lstmzoo.tasks.baselines: nearest neighbours against a brute-force search, k-NN votes and their tie rule,
leave-one-out, the choice of k, and the 1-NN the classification tasks report."""

import numpy as np
import pytest

from lstmzoo.tasks.baselines import knn_baseline, knn_choose_k, knn_predictions, nearest_neighbours
from lstmzoo.tasks.reports import nearest


def brute_force(reference, queries, count, leave_one_out=False):
    distance = ((queries[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)
    if leave_one_out:
        np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1, kind="stable")[:, :count]


@pytest.mark.parametrize("leave_one_out", [False, True])
def test_nearest_neighbours_match_a_brute_force_search_across_blocks(leave_one_out, monkeypatch):
    monkeypatch.setattr("lstmzoo.tasks.baselines.BLOCK", 7)        # several blocks, a short last one
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(40, 3))
    queries = reference if leave_one_out else rng.normal(size=(23, 3))
    found = nearest_neighbours(reference, queries, 4, leave_one_out)
    assert found.shape == (len(queries), 4)
    assert np.array_equal(found, brute_force(reference, queries, 4, leave_one_out))
    if leave_one_out:
        assert not (found == np.arange(len(queries))[:, None]).any()


def test_nearest_is_the_first_neighbour_even_with_one_reference_row():
    rng = np.random.default_rng(1)
    reference, queries = rng.normal(size=(30, 5)), rng.normal(size=(12, 5))
    assert np.array_equal(nearest(reference, queries), brute_force(reference, queries, 1)[:, 0])
    assert nearest(reference[:1], queries).tolist() == [0] * 12


def test_asking_for_more_neighbours_than_there_are_rows_is_an_error():
    reference = np.zeros((3, 2))
    assert nearest_neighbours(reference, reference, 3).shape == (3, 3)
    with pytest.raises(ValueError, match="3 neighbours asked among 3 reference rows"):
        nearest_neighbours(reference, reference, 3, leave_one_out=True)


def test_knn_votes_and_breaks_ties_by_the_nearest():
    train_x = np.array([[0.0], [1.0], [1.1], [5.0], [5.2]])
    train_y = np.array([0, 1, 1, 2, 2])
    predicted = knn_predictions(train_x, train_y, np.array([[0.2], [4.0]]), ks=(1, 2, 3))
    assert predicted[1].tolist() == [0, 2]
    assert predicted[2].tolist() == [0, 2]      # 0.2: one vote each for 0 and 1, class 0's member is nearer
    assert predicted[3].tolist() == [1, 2]
    loo = knn_predictions(train_x, train_y, train_x, ks=(1,), leave_one_out=True)[1]
    assert loo.tolist() == [1, 1, 1, 2, 2]


def test_k_is_chosen_by_leave_one_out_and_every_k_is_reported():
    # Two clusters, each with one point of the other class: leave-one-out, 1-NN gets 3 of 5 right per cluster
    # and 3-NN 4 of 5; a query next to the odd point is wrong with 1-NN and right with 3-NN.
    cluster = np.array([0.0, 1.0, 3.0, 6.0, 10.0])
    train_x = np.concatenate([cluster, cluster + 100])[:, None]
    train_y = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 1])
    assert knn_choose_k(train_x, train_y, ks=(1, 3)) == (3, 0.8)
    result = knn_baseline(train_x, train_y, np.array([[0.4], [102.6]]), np.array([0, 1]), ks=(1, 3))
    assert result == {"knn_accuracy": 1.0, "knn_k": 3, "knn_loo_train_accuracy": 0.8,
                      "knn1_accuracy": 0.5, "knn3_accuracy": 1.0}
