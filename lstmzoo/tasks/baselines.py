"""Nearest-neighbour baselines: what a classification task or recipe reports beside its LSTM.

Every function takes fixed-length feature vectors (``[N, F]`` arrays: a recipe summarises or resamples its
sequences first) and compares them by Euclidean distance, in blocks of 1,024 queries so memory stays at
1,024 x N distances.

- ``nearest_neighbours``: the indices of each query's ``count`` nearest reference rows, nearest first.
- ``knn_predictions``: k-nearest-neighbour votes for several k at once (a tie goes to the tied class with the
  nearest member); ``leave_one_out`` scores the reference rows themselves, each left out of its own vote.
- ``knn_choose_k``: the k with the best leave-one-out accuracy on the training set.
- ``knn_baseline``: k chosen that way, and the test accuracy for it and for every candidate k, as the metrics
  ``knn_accuracy``, ``knn_k``, ``knn_loo_train_accuracy`` and ``knn{k}_accuracy``.
"""

import numpy as np

KNN_KS = (1, 2, 3, 4, 5)
BLOCK = 1024            # queries per distance block


def nearest_neighbours(reference, queries, count, leave_one_out=False):
    """``[Q, count]`` indices of each query's ``count`` nearest rows of ``reference``, nearest first.
    ``leave_one_out``: the queries are the reference rows,
    and a row is never its own neighbour."""
    reference, queries = np.asarray(reference, np.float64), np.asarray(queries, np.float64)
    if not 0 < count < len(reference) + (not leave_one_out):
        raise ValueError(f"{count} neighbours asked among {len(reference)} reference rows"
                         + (" (one left out)" if leave_one_out else ""))
    norms = (reference ** 2).sum(1)[None, :]
    found = []
    for start in range(0, len(queries), BLOCK):
        block = queries[start:start + BLOCK]
        distance = (block ** 2).sum(1)[:, None] - 2 * block @ reference.T + norms
        if leave_one_out:
            distance[np.arange(len(block)), start + np.arange(len(block))] = np.inf
        nearest = np.argpartition(distance, min(count, len(reference) - 1), axis=1)[:, :count]
        order = np.argsort(np.take_along_axis(distance, nearest, axis=1), axis=1, kind="stable")
        found.append(np.take_along_axis(nearest, order, axis=1))
    return np.concatenate(found) if found else np.empty((0, count), dtype=np.int64)


def knn_predictions(train_x, train_y, query_x, ks=KNN_KS, leave_one_out=False):
    """``{k: predicted labels}`` of k-nearest-neighbour votes (Euclidean) for each k of ``ks``; a tie goes to
    the tied class with the nearest member. ``leave_one_out``: the queries are the training points, each left
    out of its own vote."""
    train_y = np.asarray(train_y)
    labels = train_y[nearest_neighbours(train_x, query_x, max(ks), leave_one_out)]   # [Q, max k], nearest first
    classes = np.unique(train_y)
    result = {}
    for k in ks:
        votes = (labels[:, :k, None] == classes).sum(axis=1)          # [Q, C]
        # Among the classes with the most votes, the one whose first neighbour comes first.
        first = np.where(labels[:, :k, None] == classes, np.arange(k)[None, :, None], k).min(axis=1)
        result[k] = classes[np.argmax(votes * (k + 1) - first, axis=1)]
    return result


def knn_choose_k(train_x, train_y, ks=KNN_KS):
    """``(k, its accuracy)``: the k of ``ks`` with the best leave-one-out accuracy on the training set (the
    smallest such k)."""
    chosen_by = {k: float(np.mean(p == train_y)) for k, p in
                 knn_predictions(train_x, train_y, train_x, ks, leave_one_out=True).items()}
    best_k = max(ks, key=lambda k: (chosen_by[k], -k))
    return best_k, chosen_by[best_k]


def knn_baseline(train_x, train_y, test_x, test_y, ks=KNN_KS):
    """The k-NN metrics: k chosen by leave-one-out accuracy on the training set (``knn_k``, with that accuracy
    as ``knn_loo_train_accuracy``), its test accuracy (``knn_accuracy``) and every k's (``knn{k}_accuracy``)."""
    best_k, loo_accuracy = knn_choose_k(train_x, train_y, ks)
    tested = {k: float(np.mean(p == test_y)) for k, p in knn_predictions(train_x, train_y, test_x, ks).items()}
    return {"knn_accuracy": tested[best_k], "knn_k": best_k, "knn_loo_train_accuracy": loo_accuracy,
            **{f"knn{k}_accuracy": tested[k] for k in ks}}
