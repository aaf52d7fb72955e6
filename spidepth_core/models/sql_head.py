"""Self Query Layer (SQLdepth) head: S -> depth via a self-cost volume and adaptive bins."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_TOKENS = 500


class SQLHead(nn.Module):
    """S [B,C,h,w] -> depth [B,1,h,w] in (min_depth, max_depth): each pixel is a probability mixture over
    adaptive depth bins, so it also has a spread (``depth_and_spread``).

    Queries are the first ``num_queries`` transformer output tokens (raster order).
    """

    def __init__(self, in_channels: int, embed_dim: int = 32, patch_size: int = 16,
                 num_queries: int = 64, num_bins: int = 64, num_heads: int = 4,
                 ffn_dim: int = 1024, num_layers: int = 4, dropout: float = 0.1,
                 min_depth: float = 1e-3, max_depth: float = 80.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.patch_size = patch_size
        self.num_queries = num_queries
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.rand(MAX_TOKENS, embed_dim))
        layer = nn.TransformerEncoderLayer(embed_dim, num_heads, ffn_dim, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.key_conv = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.bin_mlp = nn.Sequential(
            nn.Linear(embed_dim * num_queries, 16 * num_queries), nn.LeakyReLU(),
            nn.Linear(16 * num_queries, 256), nn.LeakyReLU(),
            nn.Linear(256, num_bins),
        )
        self.to_prob = nn.Conv2d(num_queries, num_bins, 1)

    def check_size(self, h: int, w: int) -> None:
        """Raise if an S map of h x w gives too few or too many tokens."""
        tokens = (h // self.patch_size) * (w // self.patch_size)
        if not self.num_queries <= tokens <= MAX_TOKENS:
            raise ValueError(
                f"S of {h}x{w} with patch {self.patch_size} gives {tokens} tokens; need "
                f"{self.num_queries}..{MAX_TOKENS} (change the input size or patch_size)")

    def queries(self, s: torch.Tensor) -> torch.Tensor:
        """S [B,C,h,w] -> queries [B,Q,E]."""
        tokens = self.patch_embed(s).flatten(2).transpose(1, 2)
        tokens = tokens + self.pos_embed[: tokens.shape[1]].unsqueeze(0)
        return self.transformer(tokens)[:, : self.num_queries]

    def bin_centers(self, summary: torch.Tensor) -> torch.Tensor:
        """summary [B,Q,E] -> centres [B,n_bins]."""
        y = torch.relu(self.bin_mlp(summary.flatten(1))) + 0.1
        widths = (self.max_depth - self.min_depth) * y / y.sum(dim=1, keepdim=True)
        edges = torch.cumsum(F.pad(widths, (1, 0), value=self.min_depth), dim=1)
        return 0.5 * (edges[:, :-1] + edges[:, 1:])

    def distribution(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """S [B,C,h,w] -> (per-pixel bin probabilities [B,n_bins,h,w], bin centres [B,n_bins,1,1])."""
        b, _, h, w = s.shape
        self.check_size(h, w)
        queries = self.queries(s)
        keys = self.key_conv(s).flatten(2)                    # [B,E,hw]
        energy = torch.bmm(queries, keys)                      # [B,Q,hw] self-cost volume
        weights = torch.softmax(energy, dim=2)                 # over pixels
        summary = torch.bmm(weights, keys.transpose(1, 2))     # [B,Q,E]
        centers = self.bin_centers(summary)
        prob = torch.softmax(self.to_prob(energy.view(b, -1, h, w)), dim=1)
        return prob, centers[:, :, None, None]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """S -> depth [B,1,h,w]: the mean of each pixel's bin mixture."""
        prob, centers = self.distribution(s)
        return (prob * centers).sum(dim=1, keepdim=True)

    def depth_and_spread(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """S -> (depth, standard deviation of the bin mixture), both [B,1,h,w] in metres."""
        prob, centers = self.distribution(s)
        depth = (prob * centers).sum(dim=1, keepdim=True)
        variance = (prob * (centers - depth) ** 2).sum(dim=1, keepdim=True)
        return depth, variance.clamp(min=0).sqrt()
