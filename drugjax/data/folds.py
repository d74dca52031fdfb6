"""Cross-validation folds of posts, and the out-of-fold predictions that follow from them.

A fold assignment is an int array: ``folds[i]`` is the fold in which post ``i`` is
tested (0 .. n_splits - 1); the model of fold ``f`` trains on every post whose fold is
not ``f``. One array serves all methods, so Table 1's rows and late fusion see the same
splits, and :func:`splits` turns it into the ``cv=`` argument of scikit-learn.

* :func:`fold_of` — the trainer's split: a post's fold from the sha1 of its id
  (``data.val_fold`` of train.py), independent of the other posts.
* :func:`stratified_folds` — stratified k-fold by post (``split=post``), seeded.
* :func:`account_folds` — stratified group k-fold by account (``split=account``): all
  posts of an account are tested together, so no account's style leaks from training
  into testing.
* :func:`id_folds` — :func:`fold_of` for a list of ids (not stratified), for scoring image models trained by ``train.py`` with
  ``data.val_fold``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold


def fold_of(record_id: str, num_folds: int = 5) -> int:
    """Stable fold of a record, from the sha1 of its id.

    Independent of record order, of the other records and of the Python hash seed, so
    train/validation splits and the 5-fold cross-validation are the same everywhere.
    """
    if num_folds < 1:
        raise ValueError(f"num_folds must be >= 1, got {num_folds}")
    digest = hashlib.sha1(str(record_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_folds


def _check_labels(labels: Any, n_splits: int) -> np.ndarray:
    labels = np.asarray(labels).ravel()
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if labels.size == 0 or not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be a non-empty list of 0/1 labels (unlabelled posts cannot be evaluated)")
    for value, name in ((1, "positive"), (0, "negative")):
        count = int(np.sum(labels == value))
        if count < n_splits:
            raise ValueError(
                f"labels hold {count} {name} posts, fewer than n_splits={n_splits}: every fold needs one; "
                "use fewer folds or more data")
    return labels.astype(int)


def stratified_folds(labels: Any, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold of each post, stratified by label (each fold has the overall share of positives).

    Posts are shuffled with ``seed`` (scikit-learn's ``StratifiedKFold(shuffle=True)``),
    so the same labels and seed give the same folds.
    """
    labels = _check_labels(labels, n_splits)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return _as_assignment(splitter.split(np.zeros(len(labels)), labels), len(labels))


def account_folds(labels: Any, accounts: Sequence[str], n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold of each post such that each account's posts share a fold, stratified as far
    as whole accounts allow (``StratifiedGroupKFold(shuffle=True)``, seeded)."""
    labels = _check_labels(labels, n_splits)
    accounts = np.asarray(accounts, dtype=object).ravel()
    if len(accounts) != len(labels):
        raise ValueError(f"accounts has {len(accounts)} entries but labels {len(labels)}; give one account per post")
    if any(not isinstance(a, str) or not a for a in accounts):
        raise ValueError("accounts must be non-empty strings (the 'account' field of each post)")
    distinct = len(set(accounts))
    if distinct < n_splits:
        raise ValueError(f"only {distinct} distinct accounts for n_splits={n_splits}; use fewer folds")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return _as_assignment(splitter.split(np.zeros(len(labels)), labels, groups=accounts), len(labels))


SPLITS: tuple[str, ...] = ("post", "account")


def folds_for_split(split: str, labels: Any, accounts: Sequence[str], n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """:func:`stratified_folds` for ``split="post"`` (the paper's protocol), :func:`account_folds`
    for ``split="account"`` (each account's posts in one fold)."""
    if split == "post":
        return stratified_folds(labels, n_splits, seed)
    if split == "account":
        return account_folds(labels, accounts, n_splits, seed)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def id_folds(ids: Sequence[str], n_splits: int = 5) -> np.ndarray:
    """The trainer's fold of each post: ``fold_of(id, n_splits)``."""
    return np.array([fold_of(i, n_splits) for i in ids], dtype=np.int64)


def _as_assignment(split_iterator: Any, n: int) -> np.ndarray:
    folds = np.full(n, -1, dtype=np.int64)
    for fold, (_, test) in enumerate(split_iterator):
        folds[test] = fold
    return folds


def splits(folds: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_indices, test_indices)`` per fold, for scikit-learn's ``cv=`` argument."""
    folds = np.asarray(folds).ravel()
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in np.unique(folds)]


def out_of_fold_probability(estimator: Any, X: Sequence[Any], y: Any, folds: Any, positive: Any = 1) -> np.ndarray:
    """Probability of the ``positive`` class for every post, from the model of its fold.

    For each fold, a fresh clone of ``estimator`` is fitted on the other folds' posts and
    scores the fold's posts; each post is thus scored by a model that never saw it. The
    result feeds :func:`drugjax.metrics.metrics_by_fold` and late fusion.
    """
    y = np.asarray(y).ravel()
    folds = np.asarray(folds).ravel()
    if not len(X) == len(y) == len(folds):
        raise ValueError(f"X, y and folds differ in length: {len(X)}, {len(y)}, {len(folds)}")
    probability = np.full(len(y), np.nan)
    for fold, (train, test) in enumerate(splits(folds)):
        model = clone(estimator).fit(_take(X, train), y[train])
        classes = list(model.classes_)
        if positive not in classes:
            raise ValueError(f"fold {fold}'s training posts hold no label {positive!r}; every fold needs both classes")
        probability[test] = model.predict_proba(_take(X, test))[:, classes.index(positive)]
    return probability


def _take(X: Sequence[Any], indices: np.ndarray) -> Any:
    if isinstance(X, np.ndarray) or hasattr(X, "tocsr"):
        return X[indices]
    return [X[i] for i in indices]
