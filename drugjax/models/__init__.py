"""Models: the Inception-v1 backbone (exact torchvision GoogLeNet port) and its weights."""

from drugjax.models.heads import EndToEnd, MultitaskHeads, single_task_mlp
from drugjax.models.inception import InceptionV1
from drugjax.models.tiny import TinyBackbone

__all__ = ["InceptionV1", "MultitaskHeads", "EndToEnd", "single_task_mlp", "TinyBackbone"]
