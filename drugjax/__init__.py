"""drugjax: tracking illicit drug dealing and abuse on Instagram with multimodal analysis.

A JAX/Flax reimplementation of Yang & Luo (2016): multitask image recognition of
drug-related posts, a text classifier and their late fusion, account pattern analysis and
dealer detection.
"""

__version__ = "0.1.0"
