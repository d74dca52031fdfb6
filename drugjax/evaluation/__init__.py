"""The paper's evaluation protocols: cross-validation folds, metrics and tables.

Kept free of imports so that ``drugjax.training`` can use :mod:`.metrics` (a leaf
module of numpy and scikit-learn) without pulling in the rest of the evaluation.
"""
