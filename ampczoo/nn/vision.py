"""A small CNN image encoder (no torchvision): one per camera in Diffusion Policy.

Images (B, H, W, C) uint8 (as the envs and the demonstration stores give them) are cropped
(``crop``: a random crop per image in training mode, the centre crop in eval mode — Diffusion
Policy's augmentation, 76 x 76 of 84 x 84 in the paper), scaled to [-1, 1], pass
``len(channels)`` stride-2 3x3 convolutions with GroupNorm and Mish, and a spatial softmax (the
expected image coordinates of each final channel, as robomimic's and Diffusion Policy's
encoders end) gives 2 keypoint coordinates per channel, mapped linearly to ``feature_dim``
features. GroupNorm instead of BatchNorm as the paper recommends with EMA.
"""

from __future__ import annotations

import torch
from torch import nn


class SpatialSoftmax(nn.Module):
    """(B, K, H, W) feature maps -> (B, 2K) expected (x, y) in [-1, 1] of each map's softmax."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, K, H, W = h.shape
        attn = torch.softmax(h.flatten(2), dim=-1).view(B, K, H, W)
        ys = torch.linspace(-1.0, 1.0, H, device=h.device, dtype=h.dtype)
        xs = torch.linspace(-1.0, 1.0, W, device=h.device, dtype=h.dtype)
        x = (attn.sum(dim=2) * xs).sum(dim=-1)
        y = (attn.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([x, y], dim=-1)


class ImageEncoder(nn.Module):
    """images (B, H, W, C) uint8 or float in [0, 255] -> features (B, feature_dim)."""

    def __init__(
        self,
        in_channels: int = 3,
        feature_dim: int = 64,
        channels: tuple[int, ...] = (32, 64, 64),
        n_groups: int = 8,
        crop: tuple[int, int] | None = None,
    ):
        super().__init__()
        if crop is not None and (len(crop) != 2 or min(crop) <= 0):
            raise ValueError(f"crop must be (h, w) > 0 or None, got {crop}")
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        if not channels or any(c % n_groups for c in channels):
            raise ValueError(f"channels must be multiples of n_groups={n_groups}, got {channels}")
        layers: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.GroupNorm(n_groups, c)]
            layers.append(nn.Mish())
            prev = c
        self.in_channels = in_channels
        self.convs = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax()
        self.head = nn.Linear(2 * prev, feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[-1] != self.in_channels:
            raise ValueError(
                f"images must be (B, H, W, {self.in_channels}), got {tuple(images.shape)}"
            )
        x = self.crop_images(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.head(self.keypoints(self.convs(x)))

    def crop_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, h, w, C): one random crop per image in training mode (offsets
        from the global torch RNG), the centre crop in eval mode; unchanged without ``crop``."""
        if self.crop is None:
            return images
        B, H, W = images.shape[:3]
        h, w = self.crop
        if h > H or w > W:
            raise ValueError(f"crop {self.crop} is larger than the images ({H}, {W})")
        if not self.training:
            top, left = (H - h) // 2, (W - w) // 2
            return images[:, top : top + h, left : left + w]
        tops = torch.randint(0, H - h + 1, (B, 1, 1), device=images.device)
        lefts = torch.randint(0, W - w + 1, (B, 1, 1), device=images.device)
        rows = tops + torch.arange(h, device=images.device).view(1, h, 1)
        cols = lefts + torch.arange(w, device=images.device).view(1, 1, w)
        return images[torch.arange(B, device=images.device).view(B, 1, 1), rows, cols]
