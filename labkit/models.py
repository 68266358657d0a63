"""Teacher and student families, chosen by name through ``MODELS``.

Every model maps images ``(B, C, H, W)`` to logits ``(B, K)``; ``forward(x, return_features=True)`` returns
``(logits, feats)`` with one feature per stage, which is what FitNets hints and attention transfer pair up.

* ``resnet`` - ``ResNetTeacher``: a CIFAR-style ResNet (He et al., 2016, "Deep Residual Learning for Image
  Recognition", Sec. 4.2), the teacher family.
* ``cnn`` - ``SmallCNN``: plain conv-BN-ReLU stages, the student family. Its stage ``i`` has the same
  spatial size as the ResNet's stage ``i``, so any pair of stages can be distilled without resizing.
* ``mlp`` - ``MLP``: flattens the image; the "capacity gap" student (its features are vectors ``(B, D)``).

Spatial sizes of the stage outputs, for an input ``H x W`` (both families, any number of stages):
stage 1 keeps ``H``, every later stage halves it rounding up, ``ceil(H / 2**i)``. For 32x32: 32, 16, 8;
for 28x28: 28, 14, 7; for 8x8: 8, 4, 2. Adaptive average pooling before the classifier makes any input
size >= 8 work.
"""

from __future__ import annotations

import copy
import inspect
import numbers
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._validate import check_choice, check_fraction, check_positive_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MLP",
    "MODELS",
    "ResNetTeacher",
    "SmallCNN",
    "build_model",
    "clone_init",
    "count_parameters",
    "model_table",
    "size_on_disk_mb",
]

MIN_SIDE = 8  # smallest image side the conv families accept (the 8x8 digits)


def _check_in_shape(in_shape: Any, image: bool = True) -> tuple[int, ...]:
    """``in_shape`` is ``(C, H, W)`` of one example (no batch dimension); H, W >= 8 for conv models."""
    ok = isinstance(in_shape, Sequence) and len(in_shape) > 0
    ok = ok and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in in_shape)
    if image:
        ok = ok and len(in_shape) == 3 and min(in_shape[1:]) >= MIN_SIDE
    if not ok:
        need = f"(channels, height, width) with height, width >= {MIN_SIDE}" if image else "positive integers"
        raise ValueError(
            f"in_shape must be the shape of one example, {need} (e.g. (1, 28, 28) or (3, 32, 32)); "
            f"got {in_shape!r}. Leave out the batch dimension."
        )
    return tuple(int(d) for d in in_shape)


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (a classifier needs two classes), got {num_classes!r}."
        )
    return int(num_classes)


def _check_pool(pool: Any, in_shape: tuple[int, ...], stages: int) -> int:
    """The classifier's grid side, at most the last stage's map, ``ceil(side / 2**(stages - 1))``: a larger grid
    would only repeat (upsample) the same values and multiply the head's weights, so a map smaller than ``pool``
    is read at its own size, with a warning (e.g. a profile's ``pool=4``, chosen for 28x28 images, on the 8x8
    digits fallback, whose last map is 2x2)."""
    check_positive_int(pool, "pool")
    last = min(-(-side // 2 ** (stages - 1)) for side in in_shape[1:])
    if pool > last:
        warnings.warn(
            f"pool={pool} is larger than the last stage's {last}x{last} map (input {in_shape[1]}x{in_shape[2]}, "
            f"{stages} stages): the classifier reads the whole {last}x{last} map (pool={last}).",
            stacklevel=4,
        )
        return last
    return int(pool)


def _check_sizes(values: Any, name: str, allow_empty: bool = False) -> tuple[int, ...]:
    if not isinstance(values, Sequence) or (not values and not allow_empty):
        raise ValueError(f"{name} must be a tuple of positive integers, got {values!r}.")
    return tuple(check_positive_int(v, f"each entry of {name}") for v in values)


class _Classifier(nn.Module):
    """Shared input check and ``forward`` contract; subclasses implement ``_forward``."""

    in_shape: tuple[int, ...]
    num_classes: int
    feature_channels: list[int]
    spatial_features: bool = True  # features are (B, C, H, W) maps; False for vectors (B, D)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != len(self.in_shape) + 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__} expects a batch of shape (B, {', '.join(map(str, self.in_shape))}), "
                f"got {shape}. Add a batch dimension with x.unsqueeze(0) for a single example."
            )
        if x.shape[1] != self.in_shape[0]:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_shape[0]} input channel(s), got a batch of shape "
                f"{tuple(x.shape)}."
            )
        weight = next(self.parameters(), None)
        if not x.is_floating_point():
            raise ValueError(
                f"{type(self).__name__} expects floating-point (normalised) images, got dtype {x.dtype}; convert raw "
                "pixels with x.float() / 255 and normalise them as the training data were."
            )
        if weight is not None and x.device != weight.device:
            raise ValueError(
                f"{type(self).__name__}'s weights are on {weight.device} but the batch is on {x.device}"
                + (
                    " (a 'meta' tensor has no values)"
                    if "meta" in (x.device.type, weight.device.type)
                    else ""
                )
                + ": move one to the other, e.g. x.to(next(model.parameters()).device)."
            )
        if weight is not None and x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(
                f"{type(self).__name__}'s weights are {weight.dtype} but the batch is {x.dtype}: convert the batch "
                f"with x.to({weight.dtype}) (labkit's data are float32)."
            )
        if self.spatial_features and min(x.shape[2:]) < MIN_SIDE:
            raise ValueError(
                f"{type(self).__name__} needs images of at least {MIN_SIDE}x{MIN_SIDE}, got a batch of shape {tuple(x.shape)}."
            )
        if not self.spatial_features and tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"{type(self).__name__} was built for examples of shape {self.in_shape} (it flattens them into its "
                f"first linear layer), got a batch of shape {tuple(x.shape)}."
            )

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` ``(B, *in_shape)`` -> logits ``(B, K)``, or ``(logits, feats)`` with one entry per stage."""
        self._check_input(x)
        logits, feats = self._forward(x)
        return (logits, feats) if return_features else logits


def _pooled(pool: nn.AdaptiveAvgPool2d, h: torch.Tensor) -> torch.Tensor:
    """``pool(h)``, refusing a last map smaller than the grid (it would be upsampled, not pooled)."""
    side = pool.output_size if isinstance(pool.output_size, int) else pool.output_size[0]
    if min(h.shape[-2:]) < side:
        raise ValueError(
            f"the last stage's map is {tuple(h.shape[-2:])} but the classifier reads a {side}x{side} grid (pool="
            f"{side}): the images are smaller than the model was built for."
        )
    return pool(h)


def _init_weights(module: nn.Module) -> None:
    # He initialisation for ReLU networks (He et al., 2015); draws from the global RNG, so seeded
    # construction is reproducible.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------- ResNet
class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (B, C_out, H / stride, W / stride)
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetTeacher(_Classifier):
    """CIFAR-style ResNet: a 3x3 stem, then stages of ``BasicBlock``s, global average pooling, a linear head.

    Stage ``i`` has ``width * 2**i`` channels; stage 1 keeps the resolution, every later stage starts with a
    stride-2 block (``ceil(H / 2)``). The defaults (``width=32, blocks=(2, 2, 2)``) give a 14-layer network
    with ~0.7M parameters; ``width=16, blocks=(3, 3, 3)`` is the classic ResNet-20. ``pool`` is the side of the
    grid the classifier reads, as in ``SmallCNN`` (1: global average pooling).

    Shapes: ``x`` ``(B, C, H, W)`` -> logits ``(B, K)``; features: the output of each stage,
    ``(B, width * 2**i, ceil(H / 2**i), ceil(W / 2**i))``.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        width: int = 32,
        blocks: Sequence[int] = (2, 2, 2),
        pool: int = 1,
    ) -> None:
        super().__init__()
        self.in_shape = _check_in_shape(in_shape)
        self.num_classes = _check_num_classes(num_classes)
        check_positive_int(width, "width")
        blocks = _check_sizes(blocks, "blocks")
        pool = _check_pool(pool, self.in_shape, len(blocks))
        self.width, self.blocks = width, blocks
        self.stem = nn.Sequential(
            nn.Conv2d(self.in_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.feature_channels = [width * 2**i for i in range(len(blocks))]
        stages, c_in = [], width
        for i, (n, c_out) in enumerate(zip(blocks, self.feature_channels)):
            layers = [
                BasicBlock(c_in if j == 0 else c_out, c_out, stride=2 if (i > 0 and j == 0) else 1)
                for j in range(n)
            ]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.fc = nn.Linear(c_in * pool * pool, self.num_classes)
        _init_weights(self)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)  # (B, width, H, W)
        feats = []
        for stage in self.stages:
            h = stage(h)  # (B, C_i, H_i, W_i)
            feats.append(h)
        return self.fc(_pooled(self.pool, h).flatten(1)), feats  # (B, K)


# ------------------------------------------------------------------------------------------ SmallCNN
class SmallCNN(_Classifier):
    """Plain CNN student: ``stages`` blocks of [max-pool 2x2 (from stage 2 on)] -> conv3x3-BN-ReLU.

    Stage ``i`` has ``width * 2**i`` channels. Down-sampling at the start of a stage (``ceil_mode`` max-pool)
    mirrors the ResNet's stride-2 first block, so a SmallCNN stage output has exactly the spatial size of
    the ResNet stage output with the same index, for any input size: with 3 stages on 32x32 inputs both give
    32, 16, 8; on 28x28 both give 28, 14, 7.

    ``pool`` is the side of the grid the classifier reads: 1 (global average pooling, the default) keeps only
    *what* is present; ``pool=4`` averages the last stage onto a 4x4 grid and flattens it, so the linear head also
    sees *where* (a sleeve, a heel), at ``pool**2`` times the head's weights.

    Shapes: ``x`` ``(B, C, H, W)`` -> logits ``(B, K)``; features: the output of each stage,
    ``(B, width * 2**i, ceil(H / 2**i), ceil(W / 2**i))``.
    """

    def __init__(
        self, in_shape: Sequence[int], num_classes: int, width: int = 16, stages: int = 2, pool: int = 1
    ) -> None:
        super().__init__()
        self.in_shape = _check_in_shape(in_shape)
        self.num_classes = _check_num_classes(num_classes)
        check_positive_int(width, "width")
        check_positive_int(stages, "stages")
        pool = _check_pool(pool, self.in_shape, stages)
        self.width, self.n_stages = width, stages
        self.feature_channels = [width * 2**i for i in range(stages)]
        layers, c_in = [], self.in_shape[0]
        for i, c_out in enumerate(self.feature_channels):
            down = [nn.MaxPool2d(2, ceil_mode=True)] if i > 0 else []  # ceil(H / 2), like a stride-2 conv
            conv = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            layers.append(nn.Sequential(*down, *conv))
            c_in = c_out
        self.stages = nn.ModuleList(layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.fc = nn.Linear(c_in * pool * pool, self.num_classes)
        _init_weights(self)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats, h = [], x
        for stage in self.stages:
            h = stage(h)  # (B, C_i, H_i, W_i)
            feats.append(h)
        return self.fc(_pooled(self.pool, h).flatten(1)), feats  # (B, K)


# ----------------------------------------------------------------------------------------------- MLP
class MLP(_Classifier):
    """Multi-layer perceptron on the flattened image: [Linear-ReLU-Dropout] per hidden size, then Linear.

    ``in_shape`` may be any example shape (``(C, H, W)`` or ``(D,)``); there is no minimum image size.
    Shapes: ``x`` ``(B, *in_shape)`` -> logits ``(B, K)``; features: the hidden activations after each ReLU,
    ``(B, hidden[i])`` (vectors, so ``spatial_features`` is False and FitNets uses a linear regressor).
    """

    spatial_features = False

    def __init__(
        self, in_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256,), dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_shape = _check_in_shape(in_shape, image=False)
        self.num_classes = _check_num_classes(num_classes)
        hidden = _check_sizes(hidden, "hidden", allow_empty=True)
        if check_fraction(dropout, "dropout") == 1.0:
            raise ValueError("dropout must be < 1 (dropout=1 zeroes every activation).")
        self.hidden, self.dropout = hidden, float(dropout)
        self.feature_channels = list(hidden)
        d_in = 1
        for d in self.in_shape:
            d_in *= d
        layers = []
        for d in hidden:
            layers.append(nn.Sequential(nn.Linear(d_in, d), nn.ReLU(), nn.Dropout(dropout)))
            d_in = d
        self.layers = nn.ModuleList(layers)
        self.fc = nn.Linear(d_in, self.num_classes)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, feats = x.flatten(1), []  # (B, C*H*W)
        for layer in self.layers:
            h = layer(h)  # (B, D_i)
            feats.append(h)
        return self.fc(h), feats  # (B, K)


# ------------------------------------------------------------------------------------------- registry
MODELS: dict[str, type[nn.Module]] = {"resnet": ResNetTeacher, "cnn": SmallCNN, "mlp": MLP}


def build_model(name: str, in_shape: Sequence[int], num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the model family ``name`` (a key of ``MODELS``) for examples of ``in_shape`` and ``num_classes``.

    ``kwargs`` are the family's size options (``resnet``: width, blocks; ``cnn``: width, stages; ``mlp``:
    hidden, dropout). Weights are drawn from torch's global RNG: seed first for reproducible weights.

    >>> build_model("cnn", (1, 28, 28), 10, width=8, stages=3).feature_channels
    [8, 16, 32]
    """
    check_choice(name, MODELS, "model")
    cls = MODELS[name]
    allowed = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "in_shape", "num_classes")
    ]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; it accepts: {', '.join(allowed)}.")
    return cls(in_shape, num_classes, **kwargs)


def clone_init(model: nn.Module) -> nn.Module:
    """An independent copy (``copy.deepcopy``) with identical weights.

    Use it to give a from-scratch student and a distilled student the same initial weights, so the only
    difference between the two runs is the training objective.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"clone_init needs an nn.Module, got {type(model).__name__}.")
    return copy.deepcopy(model)


# ------------------------------------------------------------------------------------------- sizes
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (buffers such as BatchNorm running statistics are not parameters)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"count_parameters needs an nn.Module, got {type(model).__name__}.")
    if not isinstance(trainable_only, bool):
        raise TypeError(f"trainable_only must be True or False, got {trainable_only!r}.")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def size_on_disk_mb(model: nn.Module) -> float:
    """Size in megabytes (10**6 bytes) of the model's ``state_dict`` saved as safetensors.

    That is about 4 bytes per float32 parameter, plus buffers (BatchNorm statistics) and a small header.
    """
    from safetensors.torch import save

    if not isinstance(model, nn.Module):
        raise ValueError(f"size_on_disk_mb needs an nn.Module, got {type(model).__name__}.")
    # clone: safetensors refuses tensors that share storage (e.g. tied weights)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    return len(save(state)) / 1e6


def model_table(models: dict[str, nn.Module], reference: str | None = None) -> pd.DataFrame:
    """A ``pandas.DataFrame`` indexed by model name with ``params``, ``size_mb`` and ``params_ratio``.

    ``params_ratio`` is ``params / params[reference]`` (the first model, usually the teacher, by default):
    0.05 means the model has 5 % of the reference's parameters.
    """
    import pandas as pd

    if not isinstance(models, dict) or not models:
        raise ValueError("model_table needs a non-empty dict {name: model}.")
    reference = (
        next(iter(models)) if reference is None else check_choice(reference, models, "reference model")
    )
    rows = {
        name: {"params": count_parameters(m), "size_mb": size_on_disk_mb(m)} for name, m in models.items()
    }
    if rows[reference]["params"] == 0:
        raise ValueError(
            f"the reference model {reference!r} has no parameters: params_ratio would divide by 0."
        )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["params_ratio"] = table["params"] / table.loc[reference, "params"]
    table.index.name = "model"
    return table
