"""Recurrent and convolutional series encoders, ``(B, 2C, T) -> (B, D)``: the encoders of the ``lstm`` and
``cnn1d`` baselines, and HMSPAR's series branch under ``model.series.encoder: lstm | cnn`` (the same module in
both, so that HMSPAR with either encoder against the baseline separates what the fusion adds from what the
encoder does).
"""

from __future__ import annotations

import torch
from torch import nn


class LSTMEncoder(nn.Module):
    """LSTM over time; returns the last layer's final hidden state(s), (B, 2C, T) -> (B, dirs*H)."""

    def __init__(self, n_in: int, hidden: int, num_layers: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.lstm = nn.LSTM(n_in, hidden, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        self.out_features = self.directions * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x.transpose(1, 2))  # (B, 2C, T) -> (B, T, 2C); h: (L*dirs, B, H)
        return h[-self.directions:].transpose(0, 1).reshape(x.shape[0], -1)  # (B, dirs*H)


class CNNEncoder(nn.Module):
    """``Conv1d-BatchNorm-ReLU-Dropout`` blocks ('same' padding), then mean and max pooling over time."""

    def __init__(self, n_in: int, hidden: int, num_layers: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [nn.Conv1d(n_in if i == 0 else hidden, hidden, kernel_size, padding="same"),
                       nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.convs = nn.Sequential(*layers)
        self.out_features = 2 * hidden  # mean and max pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)  # (B, 2C, T) -> (B, H, T)
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # (B, H, T) -> (B, 2H)
