"""The text stage at scale: fit and predict_proba of drugjax.text.TextClassifier on
1,000,000 posts, against scikit-learn's plain TfidfVectorizer + MultinomialNB.

The posts are drawn with replacement (seeded) from the labelled and timeline posts of
``world.plan("paper", seed)``: real captions and tag lists, cheap to make. Each
method runs in a fresh Python process so that its peak memory (``ru_maxrss``) is its
own; the peak includes the libraries and the posts themselves, printed as the first
two stages.

Reference, on the same posts in the same run: ``TfidfVectorizer()`` with scikit-learn's
default tokenisation (words of 2+ characters, lower case; no emoji, no look-alike
folding, unigrams only, no vocabulary limit) over "tags joined by spaces + caption",
then ``MultinomialNB()``.

    python bench/text.py                      # 1,000,000 posts, combined mode
    python bench/text.py --posts 100000 --mode tags
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time

METHODS = ("drugjax", "reference")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_posts(n: int, seed: int) -> tuple[list[dict], list[int]]:
    """n posts resampled (seeded) from the paper preset's labelled posts, timeline posts
    included where labelled (since world version 4 most timeline posts have drug null)."""
    import numpy as np

    from drugjax.synthetic import world

    posts, _, _, timelines = world.plan("paper", seed=seed)
    pool = posts + [post for timeline in timelines.values() for post in timeline if post["drug"] is not None]
    picks = np.random.default_rng(seed).integers(0, len(pool), size=n)
    return [pool[i] for i in picks], [int(pool[i]["drug"]) for i in picks]


def run_method(method: str, n: int, seed: int, mode: str) -> dict:
    """Time each stage of one method in this process; return times and peak memory."""
    stages = []
    start = time.perf_counter()
    # Imports first, so that the memory of the libraries is not charged to a stage.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    from drugjax.text import TextClassifier

    stages.append(("imports", time.perf_counter() - start, _peak_mb()))
    start = time.perf_counter()
    posts, labels = make_posts(n, seed)
    stages.append(("make posts", time.perf_counter() - start, _peak_mb()))
    if method == "drugjax":
        model = TextClassifier(mode=mode)
        inputs = posts
    else:
        start = time.perf_counter()
        inputs = [" ".join(post["tags"] or ()) + " " + (post["caption"] or "") for post in posts]
        stages.append(("join tags + caption", time.perf_counter() - start, _peak_mb()))
        model = make_pipeline(TfidfVectorizer(), MultinomialNB())
    start = time.perf_counter()
    model.fit(inputs, labels)
    stages.append(("fit", time.perf_counter() - start, _peak_mb()))
    start = time.perf_counter()
    model.predict_proba(inputs)
    stages.append(("predict_proba", time.perf_counter() - start, _peak_mb()))
    return {"method": method, "stages": stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default="combined", choices=("tags", "caption", "combined"))
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)  # one method, JSON to stdout
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_method(args.child, args.posts, args.seed, args.mode)))
        return 0

    load_before = os.getloadavg()[0]
    results = []
    for method in METHODS:
        child = [sys.executable, __file__, "--posts", str(args.posts), "--seed", str(args.seed),
                 "--mode", args.mode, "--child", method]
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{method} failed (exit {done.returncode}); its error is above")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()[0]

    command = "python bench/text.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"command: {command.strip()}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; python {platform.python_version()}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print(f"posts: {args.posts:,} resampled from world.plan('paper', seed={args.seed}); mode={args.mode}")
    print()
    print("| method | stage | wall s | peak RSS MB (process so far) |")
    print("|---|---|---|---|")
    for result in results:
        name = ("drugjax TextClassifier" if result["method"] == "drugjax"
                else "reference: TfidfVectorizer() + MultinomialNB()")
        for stage, seconds, peak in result["stages"]:
            print(f"| {name} | {stage} | {seconds:.1f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
