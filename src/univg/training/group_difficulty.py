"""Difficulty-aware GRPO weights on tensors: phi(mIoU of each completion's own prompt group).

TRL lays a generation batch out so that the `num_generations` completions of one prompt are contiguous
in the rewards it gathers from every process. The group mIoU is therefore exact here, whatever the
per-device batch size, the number of processes or the gradient accumulation: the official UniVG-R1
code averages over the local batch instead, which equals the group only when per-device batch == N.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from univg.core.phi import PhiKind, bucket_shares, phi


@dataclass
class GroupDifficulty:
    """Per-completion weights for one gathered generation batch, with what to log about it."""

    weights: torch.Tensor  # (num_completions,), phi of the completion's group mIoU
    group_mious: torch.Tensor  # (num_groups,)
    bucket_shares: dict[str, float]  # share of groups that are easy / medium / hard; sums to 1
    # groups whose accuracy rewards are all equal: only the format reward (if it varies) moves them
    zero_variance_share: float


def group_difficulty(
    accuracy: torch.Tensor,
    num_generations: int,
    kind: PhiKind,
    *,
    eps: float = 0.0,
    power: float = 1.0,
) -> GroupDifficulty:
    """Weights for every completion of a gathered batch of accuracy rewards (groups contiguous)."""
    if accuracy.dim() != 1 or accuracy.numel() % num_generations:
        raise ValueError(
            f"expected a flat tensor whose length is a multiple of {num_generations}, got {tuple(accuracy.shape)}"
        )
    grouped = torch.nan_to_num(accuracy.detach().float(), nan=0.0).view(-1, num_generations)
    mious = grouped.mean(dim=1)
    group_weights = torch.tensor(
        [phi(m, kind, eps=eps, power=power) for m in mious.tolist()], dtype=accuracy.dtype
    ).to(accuracy.device)
    zero_variance = (grouped.max(dim=1).values - grouped.min(dim=1).values).abs() < 1e-8
    return GroupDifficulty(
        weights=group_weights.repeat_interleave(num_generations),
        group_mious=mious,
        bucket_shares=dict(bucket_shares(mious.tolist())),
        zero_variance_share=zero_variance.float().mean().item(),
    )
