"""Shared helpers of the training tests: tiny in-memory data sources and configs.

A source is a list of dicts with ``image`` (uint8 array), ``kind`` and ``fold``, which
the grain pipeline accepts as it accepts the built datasets. Drug images are brighter in
the red channel, so a model can learn something in a few steps.
"""

from __future__ import annotations

import numpy as np

from drugjax.training.config import TrainConfig


def make_sources(n_posts: int = 40, n_web: int = 24, size: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def image(drug: bool):
        img = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        if drug:
            img[..., 0] += 120
        return img

    posts = []
    for i in range(n_posts):
        kind = int(i % 3 == 0)  # INSTAGRAM_POSITIVE = 1, NEGATIVE = 0
        posts.append({"id": f"p{i}", "image": image(bool(kind)), "kind": kind, "fold": i % 5})
    web = []
    for i in range(n_web):
        kind = 2 + i % 4  # weed, pills, syrup, negative
        web.append({"id": f"w{i}", "image": image(kind != 5), "kind": kind, "fold": i % 5})
    return {"posts": posts, "web": web}


# evaluate.py overrides that shrink Table 1 to seconds (the tiny backbone and heads).
EVALUATE_TINY = ["data.image_size=16", "model.backbone.name=tiny", "model.hidden=[16,16]", "image.steps=6",
                 "data.batch_size=8", "image.chunk_steps=3", "data.eval_batch_size=8"]


def feature_table(n_posts: int = 60, n_web: int = 24, dim: int = 16, seed: int = 0):
    """A FeatureTable of random features with something to learn (drug posts shifted on
    four dimensions): posts in five folds, web images of every kind."""
    from drugjax.training.sweep import FeatureTable

    rng = np.random.default_rng(seed)
    post_kinds = (np.arange(n_posts) % 3 == 0).astype(np.int32)  # 1 = drug post, 0 = other
    web_kinds = 2 + np.arange(n_web) % 4
    kinds = np.concatenate([post_kinds, web_kinds]).astype(np.int32)
    features = rng.normal(size=(n_posts + n_web, dim)).astype(np.float32)
    features[kinds == 1, :4] += 1.0
    folds = np.concatenate([np.arange(n_posts) % 5, np.full(n_web, -1)]).astype(np.int32)
    return FeatureTable(features, kinds, folds)


def tiny_config(**overrides) -> TrainConfig:
    """A TrainConfig with a tiny end-to-end model and small batches; dotted overrides."""
    cfg = TrainConfig()
    cfg.model.backbone.name = "tiny"
    cfg.model.hidden = [16, 16]
    cfg.data.image_size = 16
    cfg.data.batch_size = 8
    cfg.data.eval_batch_size = 8
    cfg.data.augment = False
    cfg.steps = 6
    cfg.log_every = 1
    cfg.eval_every = 3
    cfg.checkpoint_every = 2
    cfg.progress = False
    cfg.tensorboard = False
    cfg.optim.warmup_steps = 2
    for key, value in overrides.items():
        obj = cfg
        *path, last = key.split(".")
        for p in path:
            obj = getattr(obj, p)
        if not hasattr(obj, last):
            raise KeyError(key)
        setattr(obj, last, value)
    return cfg


def write_root(root, n_posts: int = 30, n_web: int = 16, size: int = 32, seed: int = 0):
    """A tiny dataset ROOT in the drugjax format (posts.jsonl, web.jsonl, images/)."""
    import json
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    sources = make_sources(n_posts, n_web, size, seed)
    with (root / "posts.jsonl").open("w") as f:
        for i, r in enumerate(sources["posts"]):
            rel = f"images/{r['id']}.png"
            Image.fromarray(r["image"]).save(root / rel)
            f.write(json.dumps({
                "id": r["id"], "account": f"acct{i % 4}", "image": rel, "caption": "a post",
                "tags": ["tag"], "comments": [], "timestamp": "2016-01-01T12:00:00+00:00",
                "query": "tag", "drug": int(r["kind"]),
            }) + "\n")
    classes = {2: "weed", 3: "pills", 4: "syrup", 5: "negative"}
    with (root / "web.jsonl").open("w") as f:
        for r in sources["web"]:
            rel = f"images/{r['id']}.png"
            Image.fromarray(r["image"]).save(root / rel)
            f.write(json.dumps({"id": r["id"], "image": rel, "class": classes[r["kind"]], "query": "q"}) + "\n")
    return root


class SlowSource:
    """A source that sleeps on every read, so a subprocess run lasts long enough to be
    killed mid-way (the tiny model is otherwise done in a blink)."""

    def __init__(self, records, delay: float):
        self.records, self.delay = records, delay

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        import time

        time.sleep(self.delay)
        return self.records[i]


def main(argv=None) -> None:
    """``python tests/train_support.py RUN_DIR [--steps N] [--delay S]``: a tiny
    resumable training run, for the kill/SIGTERM tests (run in a subprocess)."""
    import argparse
    import json

    from drugjax.training.loop import train_and_evaluate

    p = argparse.ArgumentParser()
    p.add_argument("workdir")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--delay", type=float, default=0.0)
    args = p.parse_args(argv)
    sources = make_sources()
    if args.delay:
        sources = {k: SlowSource(v, args.delay) for k, v in sources.items()}
    cfg = tiny_config(steps=args.steps, checkpoint_every=2, eval_every=10)
    cfg.parallel.block_every_step = True
    res = train_and_evaluate(cfg, args.workdir, sources=sources)
    print(json.dumps({"step": res["step"], "interrupted": res["interrupted"]}), flush=True)


if __name__ == "__main__":
    main()
