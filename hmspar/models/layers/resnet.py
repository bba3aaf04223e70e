"""ResNet-18 in plain torch, with torchvision's parameter names, for the ISA-GAF image branch.

The module tree (``conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0/1, ..., fc``) and, for
``width=64, in_channels=3, small_input=False``, every parameter and buffer shape are those of
``torchvision.models.resnet18``, so a torchvision checkpoint file loads by name with
:func:`load_torchvision_state_dict`. torchvision itself is not needed (nor imported).

Three departures for small images, small data and CPU budgets:

- ``small_input=True`` replaces the 7x7 stride-2 stem and its max-pool by a 3x3 stride-1 convolution
  (as is usual for 32x32 CIFAR images), so a 16x16 image reaches ``layer4`` at 2x2 instead of 1x1.
  Stride-2 stages on a 1x1 map keep it 1x1 (kernel 3, padding 1), so 4x4 inputs work too.
- ``width`` scales every stage (``width, 2 width, 4 width, 8 width`` channels); ``width=64`` is the
  standard network.
- ``blocks`` sets the :class:`BasicBlock` count of every stage: 2 is ResNet-18, 1 a ResNet-10 (the same
  four stages, half the convolutions; the module names of its blocks are the first of each ResNet-18
  stage).
- ``norm`` picks the normalisation layer at every ``bn*`` / ``downsample.1`` position:
  ``"batch"`` (torchvision's ``BatchNorm2d``), ``"group"`` (``GroupNorm``, statistics of each sample,
  so training and evaluation compute the same function whatever the number of optimiser steps; the
  default for training from scratch) or ``"frozen"`` (:class:`FrozenBatchNorm2d`: the batch-norm
  affine map with fixed statistics, for fine-tuning from a pretrained checkpoint). ``BatchNorm2d``
  with running statistics misbehaves on small data sets: with a few optimiser steps per epoch its
  running averages never settle and eval-mode outputs drift far from train-mode ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hmspar.errors import HmsparError

PRETRAINED_KEY = "model.image.pretrained_path"

#: Normalisations accepted by :class:`ResNet18` (``norm``).
NORMS = ("batch", "group", "frozen")

#: GroupNorm keeps at least this many channels per group (a group of one channel on a 1x1 map would
#: normalise every value to zero).
MIN_CHANNELS_PER_GROUP = 8


class FrozenBatchNorm2d(nn.Module):
    """Batch normalisation with fixed statistics and affine parameters: ``(x - mean) / sqrt(var + eps) * w + b``.

    Same state-dict names as ``nn.BatchNorm2d`` (``weight, bias, running_mean, running_var``), all
    stored as buffers: nothing is trained and train mode equals eval mode. Used when the image encoder
    starts from a pretrained checkpoint (``norm="frozen"``).

    Parameters
    ----------
    num_features : int
        Channels.
    eps : float
        Added to the variance.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)  # (C,)
        shift = self.bias - self.running_mean * scale  # (C,)
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def group_count(channels: int) -> int:
    """Groups of the GroupNorm over ``channels``: at most 32, at least :data:`MIN_CHANNELS_PER_GROUP`
    channels each (one group below that), and a divisor of ``channels``."""
    g = max(1, min(32, channels // MIN_CHANNELS_PER_GROUP))
    while channels % g:
        g -= 1
    return g


def make_norm(norm: str, channels: int) -> nn.Module:
    """The normalisation layer ``norm`` (one of :data:`NORMS`) over ``channels`` feature maps."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(group_count(channels), channels)
    if norm == "frozen":
        return FrozenBatchNorm2d(channels)
    raise HmsparError(f"model.image.norm: expected one of {', '.join(NORMS)}, got {norm!r}")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut.

    Parameters
    ----------
    in_planes, planes : int
        Input and output channels.
    stride : int
        Stride of the first convolution (and of the projection).
    norm : {"batch", "group", "frozen"}
        Normalisation layer (see :func:`make_norm`).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(norm, planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                make_norm(norm, planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_planes, H, W) -> (B, planes, ceil(H / stride), ceil(W / stride))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, Cin, H, W) -> (B, P, H', W')
        out = self.bn2(self.conv2(out))  # (B, P, H', W') -> (B, P, H', W')
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (four stages of two :class:`BasicBlock` each) with torchvision's module names; ``blocks=1``
    gives a ResNet-10.

    Parameters
    ----------
    in_channels : int
        Image channels (``2C`` for ISA-GAF images of ``C`` series channels).
    num_classes : int
        Output size of the final linear layer ``fc``.
    small_input : bool
        3x3 stride-1 stem without max-pool (for images smaller than about 32x32).
    width : int
        Channels of the first stage; 64 is the standard ResNet-18.
    norm : {"batch", "group", "frozen"}
        Normalisation layers (module docstring); ``"batch"`` is torchvision's network.
    blocks : int
        :class:`BasicBlock` modules per stage: 2 (ResNet-18) or 1 (ResNet-10, about half the cost).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, small_input: bool = False, width: int = 64,
                 norm: str = "batch", blocks: int = 2):
        super().__init__()
        if in_channels < 1 or num_classes < 1 or width < 1 or blocks < 1:
            raise HmsparError(f"resnet18: in_channels, num_classes, width and blocks must be >= 1, "
                              f"got {in_channels}, {num_classes}, {width}, {blocks}")
        if norm not in NORMS:
            raise HmsparError(f"model.image.norm: expected one of {', '.join(NORMS)}, got {norm!r}")
        self.in_channels = in_channels
        self.small_input = small_input
        self.norm = norm
        self.width = width
        self.blocks = blocks
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        widths = [width, 2 * width, 4 * width, 8 * width]
        in_planes = width
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            stage = nn.Sequential(BasicBlock(in_planes, planes, stride, norm),
                                  *(BasicBlock(planes, planes, 1, norm) for _ in range(blocks - 1)))
            self.add_module(f"layer{i + 1}", stage)
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, num_classes)
        self.out_features = num_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before ``fc``: ``(B, in_channels, H, W) -> (B, 8 width)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, K, H, W) -> (B, w, H/4, W/4) or (B, w, H, W)
        x = self.layer1(x)  # -> (B, w, h, w')
        x = self.layer2(x)  # -> (B, 2w, h/2, w'/2)
        x = self.layer3(x)  # -> (B, 4w, h/4, w'/4)
        x = self.layer4(x)  # -> (B, 8w, h/8, w'/8), never below 1x1
        return torch.flatten(self.avgpool(x), 1)  # (B, 8w, h8, w8) -> (B, 8w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) -> (B, num_classes)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise HmsparError(f"resnet18: expected (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        return self.fc(self.features(x))  # (B, K, H, W) -> (B, 8w) -> (B, num_classes)


def resnet18(in_channels: int = 3, num_classes: int = 1000, small_input: bool = False, width: int = 64,
             norm: str = "batch", blocks: int = 2) -> ResNet18:
    """Build a :class:`ResNet18` (see its parameters); defaults give torchvision's ``resnet18()``."""
    return ResNet18(in_channels=in_channels, num_classes=num_classes, small_input=small_input, width=width,
                    norm=norm, blocks=blocks)


def _adapt_conv1(src: torch.Tensor, dst_shape: torch.Size) -> torch.Tensor | None:
    """Adapt a pretrained ``(out, 3, 7, 7)`` stem kernel to ``dst_shape``; ``None`` if impossible.

    - Other input channel counts: average the filters over the RGB input channels, repeat the mean for
      every input channel and scale by ``3 / in_channels``, so a constant input image gives the same
      response as the pretrained network on a constant grey RGB image.
    - A 3x3 stem (``small_input=True``): keep the centre 3x3 of each 7x7 kernel. The centre carries
      most of the weight of ImageNet stem filters; the crop is a heuristic starting point, not an exact
      equivalent (the stride also differs).
    """
    if src.dim() != 4 or len(dst_shape) != 4 or src.shape[0] != dst_shape[0]:
        return None
    w = src
    kh, kw = dst_shape[2], dst_shape[3]
    if (w.shape[2], w.shape[3]) != (kh, kw):
        if kh > w.shape[2] or kw > w.shape[3] or (w.shape[2] - kh) % 2 or (w.shape[3] - kw) % 2:
            return None
        top, left = (w.shape[2] - kh) // 2, (w.shape[3] - kw) // 2
        w = w[:, :, top:top + kh, left:left + kw]
    if w.shape[1] != dst_shape[1]:
        w = w.mean(dim=1, keepdim=True).repeat(1, dst_shape[1], 1, 1) * (w.shape[1] / dst_shape[1])
    return w.contiguous()


def load_torchvision_state_dict(model: ResNet18, path: str | Path) -> ResNet18:
    """Load a torchvision ResNet-18 checkpoint (a state dict saved with ``torch.save``) into ``model``.

    Every entry of ``model`` except ``fc.*`` is taken from the file by name; ``conv1.weight`` is adapted
    to the model's input channels and stem kernel (see :func:`_adapt_conv1`). ``num_batches_tracked``
    buffers may be absent from the file (torchvision's published files predate them); they are then
    left as they are. The file's ``fc.*`` entries are ignored (the head is task specific).

    Parameters
    ----------
    model : ResNet18
        The network to fill in place.
    path : str or Path
        Checkpoint file (``params.yaml: model.image.pretrained_path``).

    Returns
    -------
    ResNet18
        ``model``, for chaining.

    Raises
    ------
    HmsparError
        If the file is missing or unreadable, or on the first key that is missing from the file, left
        over in it, or of a shape that cannot be adapted (e.g. a checkpoint of another ``width``).
    """
    path = Path(path)
    if not path.is_file():
        raise HmsparError(f"{path}: pretrained ResNet-18 checkpoint not found "
                          f"(set {PRETRAINED_KEY} to a local torchvision resnet18 state-dict file, or null)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise HmsparError(f"{path}: cannot read checkpoint ({PRETRAINED_KEY}): {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise HmsparError(f"{path}: expected a state dict in the checkpoint ({PRETRAINED_KEY}), "
                          f"got {type(state).__name__}")
    target = model.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    for key, dst in target.items():
        if key.startswith("fc."):
            continue
        if key not in state:
            if key.endswith("num_batches_tracked"):
                continue
            raise HmsparError(f"{path}: key {key!r} missing from the checkpoint ({PRETRAINED_KEY}); "
                              f"is it a torchvision resnet18 state dict?")
        src = state[key]
        if not isinstance(src, torch.Tensor):
            raise HmsparError(f"{path}: entry {key!r} is not a tensor ({PRETRAINED_KEY})")
        if key == "conv1.weight" and src.shape != dst.shape:
            adapted = _adapt_conv1(src, dst.shape)
            if adapted is None:
                raise HmsparError(f"{path}: key 'conv1.weight' has shape {tuple(src.shape)}, which cannot be "
                                  f"adapted to the model's {tuple(dst.shape)} ({PRETRAINED_KEY})")
            src = adapted
        if src.shape != dst.shape:
            raise HmsparError(f"{path}: key {key!r} has shape {tuple(src.shape)} in the checkpoint but "
                              f"{tuple(dst.shape)} in the model (model.image.width must be 64 for "
                              f"torchvision weights; {PRETRAINED_KEY})")
        new_state[key] = src.to(dst.dtype)
    extra = sorted(k for k in state if k not in target and not k.startswith("fc.")
                   and not k.endswith("num_batches_tracked"))  # frozen batch norms count nothing
    if extra:
        raise HmsparError(f"{path}: unexpected key {extra[0]!r} in the checkpoint ({PRETRAINED_KEY}); "
                          f"is it a torchvision resnet18 state dict?")
    model.load_state_dict(new_state, strict=False)
    return model
