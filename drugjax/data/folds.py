"""Cross-validation folds of posts: by post (the paper's protocol) or by account.

Random post splits leak on real data: one account's posts share a look, a pasted tag wall,
contacts and reposted pictures, so a model can recognise the *account* seen in training
instead of the content. Folds by account keep every account in one fold, which is the
honest estimate for new accounts; folds by post reproduce the paper's protocol.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

SPLITS: tuple[str, ...] = ("post", "account")


def _rank(seed: int, key: str) -> bytes:
    """A stable pseudo-random sort key: independent of record order and of Python's hash seed."""
    return hashlib.sha1(f"{seed}:{key}".encode("utf-8")).digest()


def _stratum(rec: Mapping[str, Any]) -> int:
    label = rec.get("drug")
    return -1 if label is None else int(label)


def folds(posts: Sequence[Mapping[str, Any]], k: int = 5, split: str = "post", seed: int = 0) -> list[int]:
    """The fold (0 .. k-1) of each post, stratified by its ``drug`` label.

    Args:
      posts: records with ``id``, ``account`` and ``drug`` (0, 1 or None), e.g.
        ``load_posts(root).records``.
      k: number of folds, at least 2.
      split: ``"post"`` deals posts to folds one by one (the paper's 5-fold CV);
        ``"account"`` keeps all posts of an account in one fold, balancing the folds'
        sizes and drug-related counts as far as the accounts allow.
      seed: another seed, another assignment.

    The result depends only on the posts' ids, accounts and labels and on ``seed`` --
    not on the order of the records -- so the same data gives the same folds everywhere.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if int(k) != k or k < 2:
        raise ValueError(f"k must be an integer of at least 2, got {k!r}")
    k = int(k)
    if split == "post":
        return _by_post(posts, k, seed)
    return _by_account(posts, k, seed)


def _by_post(posts: Sequence[Mapping[str, Any]], k: int, seed: int) -> list[int]:
    out = [0] * len(posts)
    order = sorted(range(len(posts)), key=lambda i: (_stratum(posts[i]), _rank(seed, str(posts[i]["id"]))))
    # dealt round-robin through the strata in turn: every fold gets its share of each label
    for n, i in enumerate(order):
        out[i] = n % k
    return out


def _by_account(posts: Sequence[Mapping[str, Any]], k: int, seed: int) -> list[int]:
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(posts):
        groups.setdefault(str(p["account"]), []).append(i)
    if len(groups) < k:
        raise ValueError(f"only {len(groups)} accounts for {k} account-grouped folds; use fewer folds or split='post'")
    n_drug = {a: sum(_stratum(posts[i]) == 1 for i in idx) for a, idx in groups.items()}
    drug_total = max(sum(n_drug.values()), 1)
    other_total = max(len(posts) - sum(n_drug.values()), 1)
    drug, other = [0] * k, [0] * k
    out = [0] * len(posts)
    # Largest accounts first, each into the fold whose fuller stratum (drug-related or
    # not, as a share of its total) stays lowest: greedy bin packing on both labels at
    # once. Ties go to the lower fold.
    def load_after(j: int, account: str) -> tuple[float, float, int]:
        d = (drug[j] + n_drug[account]) / drug_total
        o = (other[j] + len(groups[account]) - n_drug[account]) / other_total
        return max(d, o), d + o, j

    for account in sorted(groups, key=lambda a: (-len(groups[a]), _rank(seed, a))):
        f = min(range(k), key=lambda j: load_after(j, account))
        drug[f] += n_drug[account]
        other[f] += len(groups[account]) - n_drug[account]
        for i in groups[account]:
            out[i] = f
    return out
