"""Image decoding, crops and normalisation for the input pipeline (numpy + Pillow only).

Everything here works on one image at a time and is deterministic given its
``numpy.random.Generator``, so the grain pipeline can run it in any worker process and
still produce the same batch for the same seed and step.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# ImageNet statistics, the convention torchvision's GoogLeNet weights were trained with.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Folded into one multiply-add per pixel: (x / 255 - mean) / std.
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
_OFFSET = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Train-time augmentation.

    Attributes:
      crop_scale: range of the crop's area as a share of the image's area (random resized
        crop, as in the Inception papers and torchvision's ``RandomResizedCrop``; the
        default lower bound is milder than torchvision's 0.08 because the synthetic
        images are small and their objects fill less of the frame).
      crop_ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
      flip: mirror horizontally with probability 1/2.
    """

    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __post_init__(self):
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")


def decode(image) -> Image.Image:
    """An RGB PIL image from encoded bytes (JPEG, PNG, ...), a uint8 (H, W, 3) array or a
    PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"an image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return Image.fromarray(image)
    img = Image.open(io.BytesIO(image))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square: resizing it to S x S is 'resize the shorter side to S,
    then centre-crop S x S' done in one resampling step."""
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


def random_resized_crop_box(
    rng: np.random.Generator, width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box: area share from ``scale``, log-uniform aspect
    ratio from ``ratio``; ten tries, then the centred crop clamped to ``ratio``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def eval_image(image, image_size: int) -> np.ndarray:
    """Evaluation preprocessing: shorter side to ``image_size``, centre crop; uint8 HWC."""
    img = decode(image)
    box = center_crop_box(*img.size)
    return np.asarray(img.resize((image_size, image_size), Image.BILINEAR, box=box))


def train_image(image, image_size: int, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Training preprocessing: random resized crop and random flip; uint8 HWC."""
    img = decode(image)
    box = random_resized_crop_box(rng, *img.size, config.crop_scale, config.crop_ratio)
    img = img.resize((image_size, image_size), Image.BILINEAR, box=box)
    if config.flip and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # 10x cheaper than a numpy copy
    return np.asarray(img)


def normalize(images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 images (..., H, W, 3) -> float32 with ImageNet mean and std.

    ``out`` (float32, same shape) receives the result without temporaries: the batch
    collation writes each image straight into its slot of the batch.
    """
    if out is None:
        out = np.empty(images.shape, np.float32)
    np.multiply(images, _SCALE, out=out, casting="unsafe")
    np.add(out, _OFFSET, out=out)
    return out


def preprocess_eval(image, image_size: int) -> np.ndarray:
    """One image, ready for the model: float32 (H, W, 3), ImageNet-normalised.

    For code that scores images outside the loaders (e.g. account timelines).
    """
    return normalize(eval_image(image, image_size))
