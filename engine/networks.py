"""The paper's Table I CNNs. They return logits: the temperature is applied outside."""

from __future__ import annotations

import torch
from torch import nn

# (conv widths, fc width, input channels, input side) per Table I column.
_TABLE_I = {
    "mnist": ((32, 64), 200, 1, 28),
    "cifar10": ((64, 128), 256, 3, 32),
}


class TableICNN(nn.Module):
    """conv3x3-ReLU x2, max-pool, conv3x3-ReLU x2, max-pool, FC-ReLU x2, FC(10).

    Valid padding and dropout after the first FC layer, as in Carlini's reproduction (which
    checks its accuracy against the paper's); the paper leaves both open.
    """

    def __init__(self, arch: str = "mnist", dropout: float = 0.5, num_classes: int = 10) -> None:
        super().__init__()
        (c1, c2), fc, in_ch, side = _TABLE_I[arch]
        self.arch = arch
        self.input_shape = (in_ch, side, side)
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, c1, 3), nn.ReLU(),
            nn.Conv2d(c1, c1, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3), nn.ReLU(),
            nn.Conv2d(c2, c2, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = c2 * (((side - 4) // 2 - 4) // 2) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(flat, fc), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(fc, fc), nn.ReLU(),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_network(arch: str, dropout: float = 0.5) -> TableICNN:
    return TableICNN(arch, dropout)
