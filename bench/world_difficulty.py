"""How hard is a world? Text and image proxies (not drugjax's models) on a written ROOT.

    python bench/world_difficulty.py ROOT [--split post|account]
    python bench/world_difficulty.py ROOT --test TEST_ROOT   # train on ROOT, score TEST_ROOT (e.g. deploy)

Proxies a researcher can run in minutes on a CPU:

* text: tf-idf + multinomial naive Bayes on the tags, the caption, and both;
* image: colour and gradient histograms of the picture + gradient boosting, trained on
  the labelled posts only, on posts + web images, and on web images only (scored on the
  posts: does web supervision transfer to Instagram pictures, or does it teach a style?);
* late fusion: the mean of the text (tags + caption) and image (posts + web) probabilities;
* dealer detection (paper Sec. 4): logistic regression on the account features P, H1-H4,
  R1-R3, E, standardised, balanced class weights, stratified 5-fold CV, F1 against each
  expert -- with P (and the hours) from the labelled sample of each timeline, and from the
  tags + caption classifier trained on ROOT's posts and applied to every timeline post
  (the paper's way).

Cross-validation: 5 folds of ``drugjax.data.folds.folds_for_split`` (by post, the paper's protocol, or by
account), decision threshold 0.5. Web images are only ever added to training folds.
With ``--test`` there are no folds: every proxy is trained on all of ROOT (its posts, and
its web images where the proxy uses them) and scored on TEST_ROOT's posts -- e.g. a model
fitted at the paper's 26 % prevalence, tested at deployment's 5 % (preset ``deploy``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from drugjax.data.folds import folds_for_split
from drugjax.data import load_accounts, load_posts, load_web
from drugjax.data.schema import hour_of_day

# Transaction evidence in a bio or a comment (the paper's E): payment, shipping, contacts.
EVIDENCE = re.compile(r"dm (to|for)|text \(?\d|call/text|cashapp|\$[a-z]|venmo|paypal|btc|ship|wickr|telegram|t\.me"
                      r"|whatsapp|signal \d|menu|delivery|serious buyers|prices in dm", re.IGNORECASE)


def image_features(path: Path) -> np.ndarray:
    """Global colour and gradient statistics of a picture, size-independent (resized to 64 px)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((64, 64), Image.BILINEAR)
        hsv = np.asarray(rgb.convert("HSV"), np.float32) / 255.0
    x = np.asarray(rgb, np.float32) / 255.0
    feats = [np.histogram(x[..., c], 16, (0, 1))[0] for c in range(3)]
    hue, sat, val = hsv[..., 0].ravel(), hsv[..., 1].ravel(), hsv[..., 2].ravel()
    feats.append(np.histogram2d(hue, sat, (12, 3), ((0, 1), (0, 1)))[0].ravel())
    feats.append(np.histogram(val, 8, (0, 1))[0])
    g = x.mean(-1)
    gx, gy = np.diff(g, axis=1)[:-1], np.diff(g, axis=0)[:, :-1]
    mag, ang = np.hypot(gx, gy).ravel(), np.arctan2(gy, gx).ravel()
    feats.append(np.histogram(mag, 10, (0, 0.5))[0])
    feats.append(np.histogram(ang, 8, (-np.pi, np.pi), weights=mag)[0] * 100)
    return np.concatenate([f.astype(np.float32) / 4096 for f in feats])


def scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float, float]:
    pred = p >= 0.5
    return (100 * accuracy_score(y, pred), 100 * precision_score(y, pred, zero_division=0),
            100 * recall_score(y, pred), f1_score(y, pred), roc_auc_score(y, p))


def account_features(account: dict, drug_of) -> list[float]:
    """P, H1-H4, R1-R3, E of one account; drug_of(post) is 1, 0 or None (unknown)."""
    known = [(p, drug_of(p)) for p in account["timeline"]]
    known = [(p, d) for p, d in known if d is not None]
    drug = [p for p, d in known if d == 1]
    share = len(drug) / len(known) if known else 0.0
    hours = np.zeros(4)
    for p in drug:
        hours[hour_of_day(p["timestamp"]) // 6] += 1  # midnight, morning, afternoon, late night
    hours = hours / max(len(drug), 1)
    followers, following = account["followers"], account["following"]
    text = account["bio"] + " " + " ".join(c for p in account["timeline"] for c in p["comments"])
    return [share, *hours, np.log1p(followers), np.log1p(following), np.log((following + 1) / (followers + 1)),
            float(bool(EVIDENCE.search(text)))]


def dealer_f1(x: np.ndarray, y: np.ndarray) -> float:
    """Stratified 5-fold F1 of a balanced, standardised logistic regression."""
    pred = np.zeros(len(y), bool)
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        m = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
        pred[te] = m.fit(x[tr], y[tr]).predict(x[te]).astype(bool)
    return f1_score(y, pred)


def dealer_rows(root: Path, posts: list[dict], y: np.ndarray) -> list[tuple[str, float, float]]:
    accounts = load_accounts(root, decode_images=False).records
    if len(accounts) < 10:
        return []
    docs = lambda recs: [" ".join(p["tags"]) + " " + p["caption"] for p in recs]  # noqa: E731
    vec = TfidfVectorizer(max_features=1000)
    nb = MultinomialNB().fit(vec.fit_transform(docs(posts)), y)
    timeline = [p for a in accounts for p in a["timeline"]]
    flagged = dict(zip((p["id"] for p in timeline), nb.predict(vec.transform(docs(timeline))) if timeline else []))
    e1 = np.array([a["expert1"] for a in accounts])
    e2 = np.array([a["expert2"] for a in accounts])
    rows = []
    for name, drug_of in (("P from the labelled sample of each timeline", lambda p: p["drug"]),
                          ("P from the text classifier on every timeline post", lambda p: int(flagged[p["id"]]))):
        x = np.array([account_features(a, drug_of) for a in accounts])
        rows.append((name, dealer_f1(x, e1), dealer_f1(x, e2)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("--split", default="post", choices=("post", "account"))
    ap.add_argument("--test", help="train on ROOT, score the posts of this ROOT instead of cross-validating")
    args = ap.parse_args(argv)
    root = Path(args.root)
    t0 = time.perf_counter()
    posts = [p for p in load_posts(root, decode_images=False).records if p["image"]]
    web = load_web(root, decode_images=False).records
    if args.test:
        test_root = Path(args.test)
        test = [p for p in load_posts(test_root, decode_images=False).records if p["image"]]
        # one "fold": train on every ROOT post, test on every TEST_ROOT post
        posts, fold = posts + test, np.array([1] * len(posts) + [0] * len(test))
        roots = [root] * (len(posts) - len(test)) + [test_root] * len(test)
        n_folds, scored = 1, fold == 0
    else:
        fold = folds_for_split(args.split, [p["drug"] for p in posts], [p["account"] for p in posts], 5, seed=0)
        roots = [root] * len(posts)
        n_folds, scored = 5, np.ones(len(posts), bool)
    y = np.array([p["drug"] for p in posts])
    rows: dict[str, np.ndarray] = {}

    docs = {"tags": [" ".join(p["tags"]) for p in posts], "caption": [p["caption"] for p in posts]}
    docs["tags + caption"] = [t + " " + c for t, c in zip(docs["tags"], docs["caption"])]
    for name, d in docs.items():
        d = np.array(d, object)
        p = np.zeros(len(y))
        for f in range(n_folds):
            tr, te = fold != f, fold == f
            vec = TfidfVectorizer(max_features=1000, token_pattern=r"\S+" if name == "tags" else r"(?u)\b\w\w+\b")
            p[te] = MultinomialNB().fit(vec.fit_transform(d[tr]), y[tr]).predict_proba(vec.transform(d[te]))[:, 1]
        rows[f"text: {name} (tf-idf + NB)"] = p

    xp = np.stack([image_features(r / p["image"]) for r, p in zip(roots, posts)])
    xw = np.stack([image_features(root / w["image"]) for w in web])
    yw = np.array([int(w["class"] != "negative") for w in web])
    model = lambda: HistGradientBoostingClassifier(max_iter=200, random_state=0)  # noqa: E731
    only, both = np.zeros(len(y)), np.zeros(len(y))
    for f in range(n_folds):
        tr, te = fold != f, fold == f
        only[te] = model().fit(xp[tr], y[tr]).predict_proba(xp[te])[:, 1]
        both[te] = model().fit(np.concatenate([xp[tr], xw]), np.concatenate([y[tr], yw])).predict_proba(xp[te])[:, 1]
    rows["image: histograms + GBDT, posts only"] = only
    rows["image: same, posts + web"] = both
    rows["image: same, web only (scored on all posts)"] = model().fit(xw, yw).predict_proba(xp)[:, 1]
    rows["late fusion 50/50: text (tags + caption) and image (posts + web)"] = (
        rows["text: tags + caption (tf-idf + NB)"] + both) / 2
    y = y[scored]
    rows = {k: v[scored] for k, v in rows.items()}

    how = f"trained on ROOT, tested on {args.test}" if args.test else f"folds by {args.split}"
    print(f"# world difficulty: {root}; {len(y)} posts scored, {len(web)} web images; {how}; "
          f"{time.perf_counter() - t0:.0f} s")
    print("| proxy | acc | prec | rec | F1 | AUC |\n|---|---|---|---|---|---|")
    for name, p in rows.items():
        acc, prec, rec, f1, auc = scores(y, p)
        print(f"| {name} | {acc:.1f} | {prec:.1f} | {rec:.1f} | {f1:.2f} | {auc:.3f} |")
    if not args.test:  # every post of ROOT trains the text classifier for P
        rows_d = dealer_rows(root, posts, y)
        if rows_d:
            print("\n| dealer detection (LR on P, H1-H4, R1-R3, E; 5-fold) | F1 expert 1 | F1 expert 2 |\n|---|---|---|")
            for name, f1a, f1b in rows_d:
                print(f"| {name} | {f1a:.2f} | {f1b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
