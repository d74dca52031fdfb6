"""The text classifier of post recognition (paper, Section 2.2).

Tags give unigram tf-idf features, captions unigram + bigram tf-idf features; each keeps
the 1,000 terms of highest frequency across the training corpus ("top 1000 features
ordered by term frequency across the corpus"); ``combined`` puts both side by side
(2,000 sparse columns). A multinomial naive Bayes model classifies them.

Everything is a scikit-learn estimator, so it works in ``Pipeline``, ``GridSearchCV`` and
``cross_validate``. ``X`` is a sequence of posts: mappings with ``"tags"`` (a list of
strings) and ``"caption"`` (a string), as in ``posts.jsonl`` (docs/data-format.md).
A missing or ``None`` caption or tag list counts as empty (posts without a caption are
common on Instagram, and a dataset may omit one of the fields; a NaN caption, pandas'
missing value, too); a post that is not a
mapping, or has neither key, is an error that names its index.

Text is normalised by :func:`normalize_text` before tokenising, so that the spellings
people use to dodge keyword filters fall onto the plain word: fullwidth and
mathematical letters (NFKC), Cyrillic and Greek look-alikes, accents and invisible
characters. The account stage reuses :func:`normalize_text` to match its blacklist.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

MODES = ("tags", "caption", "combined")

# Letters of other scripts that look like Latin ones and are used to write "xаnax" with a
# Cyrillic "а" so that a keyword filter misses it. Only shapes that are near-identical
# in common fonts are mapped; upper case is mapped before case folding because some
# capitals (Cyrillic В, Н, М) look like a Latin capital but their lower case does not.
CONFUSABLES = {
    # Cyrillic lower case
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i",
    "ј": "j", "ѕ": "s", "һ": "h", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    # Cyrillic capitals
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S",
    # Greek lower case
    "ο": "o", "α": "a", "ν": "v", "ι": "i", "ρ": "p", "κ": "k", "υ": "u",
    # Greek capitals
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}
_CONFUSABLES_TABLE = str.maketrans(CONFUSABLES)

# Skin-tone modifiers: "🙌🏽" is the same gesture as "🙌".
_SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}

# A token is a run of letters and digits (underscore, '#', '@', '$' and punctuation
# separate), or one symbol character, kept only if it is an emoji-like symbol.
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")


def normalize_text(text: str) -> str:
    """Fold a piece of social-media text onto plain lower-case letters.

    In order: Unicode NFKC (fullwidth "ｗｅｅｄ", mathematical "𝐰𝐞𝐞𝐝" and circled "ⓦⓔⓔⓓ"
    letters become "weed"); Cyrillic and Greek look-alike letters become the Latin ones
    (:data:`CONFUSABLES`); accents, emoji variation selectors, keycap marks, skin-tone
    modifiers and invisible format characters (zero-width spaces and joiners, soft
    hyphens) are removed; then case folding.

    Leetspeak with digits and symbols ("x4n4x", "w33d", "$" for "s") is deliberately
    *not* undone: digits carry meaning here ("420", "710", "m30s", "perc30", "4s" for
    pints, prices and phone numbers), and turning them into letters would merge "420"
    with a word and make every price look like slang. Repeated letters ("sooo") are kept
    too; the tf-idf vocabulary learns the common spellings as terms of their own.

    Removing all nonspacing marks also removes the marks of scripts that need them
    (Devanagari viramas, Hebrew points); such words only become coarser, and the same
    rule applies when fitting and when predicting.
    """
    if text.isascii():  # the common case, and nothing but case folding applies to it
        return text.lower()
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES_TABLE)
    kept = [
        c
        for c in unicodedata.normalize("NFKD", text)
        if unicodedata.category(c) not in ("Mn", "Me", "Cf") and c not in _SKIN_TONES
    ]
    return unicodedata.normalize("NFC", "".join(kept)).casefold()


def caption_tokens(caption: str) -> list[str]:
    """The unigram tokens of a caption: normalised words and emoji, one emoji a token.

    A hashtag inside a caption gives the same token as the bare word ("#lean" and
    "lean"), and '@', '$', '_' and punctuation separate words. An emoji sequence joined
    by zero-width joiners becomes its parts.
    """
    tokens = []
    for match in _TOKEN.finditer(normalize_text(caption)):
        token = match.group()
        if token.isalnum() or unicodedata.category(token) == "So":  # drops punctuation
            tokens.append(token)
    return tokens


def tag_tokens(tags: Sequence[str]) -> list[str]:
    """The unigram tokens of a tag list: one token per tag, normalised, without '#'.

    A tag is one term ("smokeweedeveryday" stays whole), as the paper's tag unigrams are
    tags; "#Weed", "weed" and "ｗｅｅｄ" are the same token. Empty tags are dropped.
    """
    tokens = []
    for tag in tags:
        token = normalize_text(tag).strip().lstrip("#").strip()
        if token:
            tokens.append(token)
    return tokens


def _check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}; set mode='combined' for tags and caption")
    return mode


def _check_max_features(max_features: Any) -> int:
    if isinstance(max_features, bool) or not isinstance(max_features, (int, np.integer)) or max_features < 1:
        raise ValueError(f"max_features must be a positive integer, got {max_features!r}; the paper keeps 1000")
    return int(max_features)


def post_texts(posts: Sequence[Mapping[str, Any]]) -> tuple[list[list[str]], list[str]]:
    """The tag lists and captions of ``posts``, checked, with missing or None as empty.

    Tags may be a list, tuple or numpy array of strings; a caption may also be NaN
    (pandas' missing value), which counts as empty.

    Raises ValueError naming the index of the first post that is not a mapping, has
    neither a "tags" nor a "caption" key, or holds a value of the wrong type.
    """
    if isinstance(posts, (str, bytes, Mapping)) or not hasattr(posts, "__len__"):
        raise ValueError(
            f"X must be a sequence of posts (mappings with 'tags' and 'caption'), got {type(posts).__name__}")
    tag_lists: list[list[str]] = []
    captions: list[str] = []
    for index, post in enumerate(posts):
        if not isinstance(post, Mapping):
            raise ValueError(
                f"post {index} is a {type(post).__name__}, not a mapping; each post must be a dict "
                "with 'tags' (a list of strings) and 'caption' (a string)")
        if "tags" not in post and "caption" not in post:
            raise ValueError(
                f"post {index} has neither 'tags' nor 'caption' (keys: {sorted(map(str, post))[:8]}); "
                "give at least one of them")
        tags = post.get("tags")
        if tags is None:
            tags = []
        # numpy arrays too: list columns read with pandas or pyarrow arrive as arrays
        if (isinstance(tags, (str, bytes)) or not isinstance(tags, (Sequence, np.ndarray))
                or not all(isinstance(t, str) for t in tags)):
            raise ValueError(
                f"post {index}: 'tags' must be a list of strings, got {tags!r:.60}; "
                "wrap a single tag in a list")
        caption = post.get("caption")
        if caption is None or (isinstance(caption, float) and math.isnan(caption)):
            caption = ""  # None, or NaN: pandas' missing value
        if not isinstance(caption, str):
            raise ValueError(f"post {index}: 'caption' must be a string or None, got {type(caption).__name__}")
        tag_lists.append(list(tags))
        captions.append(caption)
    if not captions:
        raise ValueError("X holds no posts; give at least one")
    return tag_lists, captions


def _identity(document: Any) -> Any:
    return document


def _posts_input(tags: Any) -> Any:
    """Estimator tags saying that X is a list of posts (mappings of text), not an array."""
    tags.input_tags.two_d_array = False
    tags.input_tags.dict = True
    tags.input_tags.string = True
    return tags


class TextFeatures(TransformerMixin, BaseEstimator):
    """Tf-idf features of posts' tags and/or captions, as sparse rows.

    Args:
      mode: "tags" (tag unigrams), "caption" (caption unigrams and bigrams) or
        "combined" (both, tags first).
      max_features: terms kept per field, the most frequent across the training corpus
        (total count of the term, not its tf-idf score or document frequency).

    Fitted attributes: ``vectorizers_`` (field name -> fitted ``TfidfVectorizer``).
    """

    def __init__(self, mode: str = "combined", max_features: int = 1000):
        self.mode = mode
        self.max_features = max_features

    def _fields(self) -> tuple[str, ...]:
        mode = _check_mode(self.mode)
        return ("tags", "caption") if mode == "combined" else (mode,)

    def _new_vectorizer(self, field: str) -> TfidfVectorizer:
        max_features = _check_max_features(self.max_features)
        if field == "tags":
            # The tag list is already tokenised: the analyzer gets a post's tag list.
            return TfidfVectorizer(analyzer=tag_tokens, max_features=max_features, dtype=np.float64)
        return TfidfVectorizer(
            tokenizer=caption_tokens, preprocessor=_identity, lowercase=False, token_pattern=None,
            ngram_range=(1, 2), max_features=max_features, dtype=np.float64)

    def fit(self, X: Sequence[Mapping[str, Any]], y: Any = None) -> "TextFeatures":
        """Learn each field's vocabulary (top ``max_features`` terms) and idf weights."""
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Sequence[Mapping[str, Any]], y: Any = None) -> sp.csr_matrix:
        """Fit and return the features of ``X`` (one pass over the text)."""
        fields = self._fields()
        texts = dict(zip(("tags", "caption"), post_texts(X)))
        vectorizers, blocks = {}, []
        for field in fields:
            vectorizer = self._new_vectorizer(field)
            try:
                blocks.append(vectorizer.fit_transform(texts[field]))
            except ValueError as error:
                if "empty vocabulary" not in str(error):
                    raise
                raise ValueError(
                    f"no post has any {field} to learn from (mode={self.mode!r}); "
                    f"give posts with {field} or choose another mode") from None
            vectorizers[field] = vectorizer
        self.vectorizers_ = vectorizers
        return sp.hstack(blocks, format="csr")

    def transform(self, X: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """The tf-idf rows of ``X`` (n_posts x n_features, CSR); unseen terms are ignored."""
        check_is_fitted(self, "vectorizers_")
        texts = dict(zip(("tags", "caption"), post_texts(X)))
        return sp.hstack([v.transform(texts[f]) for f, v in self.vectorizers_.items()], format="csr")

    def __sklearn_tags__(self):
        return _posts_input(super().__sklearn_tags__())

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Feature names, prefixed by their field: "tags:weed", "caption:got that"."""
        check_is_fitted(self, "vectorizers_")
        return np.asarray(
            [f"{field}:{term}" for field, v in self.vectorizers_.items() for term in v.get_feature_names_out()],
            dtype=object)


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Tf-idf features (:class:`TextFeatures`) + multinomial naive Bayes, as in the paper.

    Args:
      mode: "tags", "caption" or "combined" (Table 1's three text rows).
      max_features: terms kept per field (the paper: 1000).
      alpha: additive (Laplace) smoothing of the naive Bayes model (sklearn's default 1.0).

    Fitted attributes: ``features_`` (the fitted :class:`TextFeatures`), ``model_``
    (the fitted ``MultinomialNB``), ``classes_``.
    """

    def __init__(self, mode: str = "combined", max_features: int = 1000, alpha: float = 1.0):
        self.mode = mode
        self.max_features = max_features
        self.alpha = alpha

    def fit(self, X: Sequence[Mapping[str, Any]], y: Any) -> "TextClassifier":
        """Fit the features and the naive Bayes model on posts ``X`` with labels ``y``."""
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be one label per post (1-D), got shape {y.shape}")
        check_classification_targets(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} posts but y has {len(y)} labels; give one label per post")
        features = TextFeatures(mode=self.mode, max_features=self.max_features)
        matrix = features.fit_transform(X)
        self.model_ = MultinomialNB(alpha=self.alpha).fit(matrix, y)
        self.features_ = features
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Class probabilities, one row per post, columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self.features_.transform(X))

    def predict(self, X: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The most probable class of each post."""
        check_is_fitted(self, "model_")
        return self.model_.predict(self.features_.transform(X))

    def __sklearn_tags__(self):
        return _posts_input(super().__sklearn_tags__())

