"""The masked multitask binary cross-entropy of the paper (Eq. 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_bce_terms(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    """Per-sample, per-task weighted losses ``-w [y log s(z) + (1-y) log(1-s(z))]``.

    Computed from logits with log-sigmoid, so a logit of +-100 gives a finite loss and a
    finite gradient. Entries with weight 0 contribute exactly 0 (also when the logit is
    extreme), which is what masking means.
    """
    logits = logits.astype(jnp.float32)
    log_p = jax.nn.log_sigmoid(logits)
    log_not_p = jax.nn.log_sigmoid(-logits)
    return -weights * (targets * log_p + (1.0 - targets) * log_not_p)


def masked_bce(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    """Eq. 1: ``-(1/N) sum_n sum_t w_nt [y_nt log s(z_nt) + (1 - y_nt) log(1 - s(z_nt))]``.

    Args:
      logits: ``(N, T)`` pre-sigmoid scores.
      targets: ``(N, T)`` in {0, 1}.
      weights: ``(N, T)`` loss weights; 0 masks an entry out.

    Returns:
      The scalar loss, normalised by the batch size N (not by the number of unmasked
      entries, as in the paper's Eq. 1).
    """
    if logits.shape != targets.shape or logits.shape != weights.shape:
        raise ValueError(
            f"logits, targets and weights must have one shape, got {logits.shape}, "
            f"{targets.shape} and {weights.shape}"
        )
    return jnp.sum(masked_bce_terms(logits, targets, weights)) / logits.shape[0]
