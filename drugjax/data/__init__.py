"""Data: the on-disk format and its validation, folds, labels, import, builders and pipeline.

``drugjax.data.schema`` loads and validates a dataset ROOT (docs/data-format.md),
``drugjax.synthetic.world`` writes a synthetic world in that format, and
``python -m drugjax.data validate ROOT`` reports every rejected record.
``drugjax.data.instaloader_import`` imports Instaloader downloads into a ROOT and
``drugjax.data.labels`` moves labels in and out of one as CSV
(``python -m drugjax.data import-instaloader / export-unlabelled / label``).
"""

from drugjax.data.folds import fold_of
from drugjax.data.schema import (
    ImageError,
    Loaded,
    Rejection,
    load_accounts,
    load_posts,
    load_web,
    read_image,
)

__all__ = [
    "ImageError",
    "Loaded",
    "Rejection",
    "fold_of",
    "load_accounts",
    "load_posts",
    "load_web",
    "read_image",
]
