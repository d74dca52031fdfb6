"""Process-level helpers at the bottom of the package: XLA:CPU compile options, huge
pages, log filters, digests, tree helpers, the Hydra run record and safe printing of
text that comes from data."""
