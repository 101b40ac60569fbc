"""The 2-layer MLP that maps ViT features into the LLM width (BAGEL: GELU-tanh between the layers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def activation(name: str):
    """The activation function for a transformers-style name."""
    table = {
        "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "gelu": F.gelu,
        "silu": F.silu,
        "relu": F.relu,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(table)}")
    return table[name]


class MLPConnector(nn.Module):
    """fc2(act(fc1(x))): [N, in_dim] -> [N, out_dim]."""

    def __init__(self, in_dim: int, out_dim: int, act: str = "gelu_pytorch_tanh"):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.act_name = act
        self._act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self._act(self.fc1(x)))
