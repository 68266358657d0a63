"""torchvision models as labkit teachers (or students), with the per-stage features that hints and attention need.

``torchvision_model("resnet18", num_classes)`` replaces the model's last ``Linear`` layer and wraps the model in a
``TorchvisionClassifier``: ``model(x)`` returns logits ``(B, K)`` and ``model(x, return_features=True)`` returns
``(logits, [feature per stage])``, the contract of ``labkit.models``, so every method of ``lk.METHODS`` takes it.
The stage outputs come from torchvision's own feature extraction (``create_feature_extractor``, which rewrites
the model's graph with ``torch.fx`` to return the requested nodes; ``get_graph_node_names`` lists the nodes):

* ResNet-style models (``layer1`` ... ``layer4``): the four residual groups, as in Zagoruyko & Komodakis (2017).
* Models with a ``features`` sequence (MobileNet, EfficientNet, ConvNeXt, VGG, ...): the last block of
  ``features`` at each spatial resolution.
* Anything else, or another choice: ``nodes=[...]``, names from ``torchvision_nodes(name)``.

Hints and attention pair stage ``i`` of the student with stage ``i`` of the teacher at the same spatial size.
A ResNet's stage ``i`` is ``1 / 2**(i + 2)`` of its input, a labkit student's ``1 / 2**i``: ``input_size``
resizes the images the torchvision model sees (bilinear), e.g. 4x the image side aligns ``layer1..layer3``
with a 3-stage ``cnn`` student (``stage_sizes`` reports them), and ``align_to=student`` finds that scale and
those stages. Grey images are repeated to the 3 channels ImageNet models expect.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_choice, check_positive_int

__all__ = ["TorchvisionClassifier", "torchvision_model", "torchvision_nodes"]


def _torchvision():
    try:
        import torchvision
        from torchvision.models import feature_extraction  # noqa: F401
    except ImportError as err:
        raise ImportError("torchvision is not installed: `pip install -e .[vision]` (Colab has it).") from err
    return torchvision


def _check_in_shape(in_shape) -> tuple[int, int, int]:
    ok = isinstance(in_shape, (tuple, list, torch.Size)) and len(in_shape) == 3
    ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in in_shape)
    if not ok or in_shape[0] not in (1, 3):
        raise ValueError(
            f"in_shape must be (channels, height, width) of positive ints with 1 or 3 channels, got {in_shape!r}."
        )
    return tuple(int(d) for d in in_shape)


def _check_pair(size, arg: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise ValueError(f"{arg} must be (height, width) or None, got {size!r}.")
    return (check_positive_int(size[0], f"{arg}[0]"), check_positive_int(size[1], f"{arg}[1]"))


def _check_nodes(nodes) -> list[str] | None:
    if nodes is None:
        return None
    if (
        isinstance(nodes, str)
        or not isinstance(nodes, (list, tuple))
        or not all(isinstance(n, str) for n in nodes)
    ):
        raise ValueError(f"nodes must be a list of node names, e.g. ['layer1', 'layer2'], got {nodes!r}.")
    return list(nodes)


def torchvision_nodes(model: nn.Module | str) -> list[str]:
    """The node names of a torchvision model's graph in eval mode (``get_graph_node_names``), for ``nodes=``."""
    if not isinstance(model, (str, nn.Module)):
        raise TypeError(
            f"model must be a torchvision model name (str) or an nn.Module, got {type(model).__name__}."
        )
    tv = _torchvision()
    if isinstance(model, str):
        check_choice(model, tv.models.list_models(module=tv.models), "torchvision model")
        model = tv.models.get_model(model, weights=None)
    return tv.models.feature_extraction.get_graph_node_names(model)[1]


def _replace_head(model: nn.Module, name: str, num_classes: int) -> None:
    owner, attr = model, next((a for a in ("fc", "classifier", "head", "heads") if hasattr(model, a)), None)
    if attr is None:
        raise ValueError(f"do not know where {name}'s classification layer is; replace it by hand.")
    head = getattr(owner, attr)
    if isinstance(head, nn.Sequential):
        owner, attr = head, str(len(head) - 1)
        head = head[-1]
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"{name}'s last layer is a {type(head).__name__}, not a Linear layer; replace it by hand."
        )
    setattr(owner, attr, nn.Linear(head.in_features, num_classes))


def _default_nodes(model: nn.Module, name: str, probe: torch.Tensor) -> list[str]:
    groups = [f"layer{i}" for i in range(1, 5) if hasattr(model, f"layer{i}")]
    if groups:
        return groups
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        nodes, sizes = [], []
        with torch.no_grad():
            h = probe
            for i, block in enumerate(features):
                h = block(h)
                if h.dim() == 4 and sizes and sizes[-1] == tuple(h.shape[2:]):
                    nodes[-1] = f"features.{i}"  # same resolution: a later block of the same stage
                elif h.dim() == 4:
                    nodes.append(f"features.{i}")
                    sizes.append(tuple(h.shape[2:]))
        if nodes:
            return nodes
    raise ValueError(
        f"nodes: do not know {name}'s stages; pass nodes=[...] with names from lk.torchvision_nodes({name!r})."
    )


class TorchvisionClassifier(nn.Module):
    """A torchvision classifier with labkit's ``forward(x, return_features=False)`` contract.

    ``body`` is ``create_feature_extractor(model, {node: "stage_i", ..., last: "logits"})``: one traced graph
    returns the logits and every stage, so features cost no second forward pass. ``feature_channels`` and
    ``stage_sizes`` (spatial size of each stage for ``in_shape``) are measured once on a zero image.
    """

    spatial_features = True

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        in_shape: Sequence[int],
        nodes: Sequence[str] | None = None,
        input_size: tuple[int, int] | None = None,
        name: str = "model",
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torchvision nn.Module, got {type(model).__name__}.")
        self.num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
        self.in_shape = _check_in_shape(in_shape)
        self.input_size = _check_pair(input_size, "input_size")
        nodes = _check_nodes(nodes)
        fx = _torchvision().models.feature_extraction
        was_training = model.training
        model.eval()
        probe = self._prepare(torch.zeros(1, *self.in_shape))
        graph = fx.get_graph_node_names(model)[1]
        chosen = list(nodes) if nodes is not None else _default_nodes(model, name, probe)
        known = set(graph) | {n.rsplit(".", k)[0] for n in graph for k in range(1, n.count(".") + 1)}
        unknown = [n for n in chosen if n not in known]
        if unknown or not chosen:
            raise ValueError(
                f"nodes: {unknown or chosen} are not nodes of {name}'s graph; some of its nodes: {graph[1:8]} ... "
                f"{graph[-3:]} (all: lk.torchvision_nodes({name!r}))."
            )
        self.nodes = chosen
        self.body = fx.create_feature_extractor(
            model, {**{n: f"stage_{i}" for i, n in enumerate(chosen)}, graph[-1]: "logits"}
        )
        with torch.no_grad():
            out = self.body(probe)
        feats = [out[f"stage_{i}"] for i in range(len(chosen))]
        if out["logits"].shape != (1, self.num_classes):
            raise ValueError(
                f"{name}'s last node {graph[-1]!r} gives {tuple(out['logits'].shape)}, not logits (1, {num_classes})."
            )
        if any(f.dim() != 4 for f in feats):
            raise ValueError(
                f"nodes: every stage must be a (B, C, H, W) map; {name} gives "
                f"{[tuple(f.shape) for f in feats]} for {self.nodes}."
            )
        self.feature_channels = [int(f.shape[1]) for f in feats]
        self.stage_sizes = [tuple(int(s) for s in f.shape[2:]) for f in feats]
        self.train(was_training)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"x must be a torch.Tensor (B, {', '.join(map(str, self.in_shape))}), got {type(x).__name__}."
            )
        if x.dim() != 4 or x.shape[1] != self.in_shape[0]:
            raise ValueError(
                f"expects a batch of shape (B, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}."
            )
        if not x.is_floating_point():
            raise ValueError(
                f"x must be a floating tensor (standardised images), got dtype {x.dtype}; use x.float()."
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> the 3 channels of an ImageNet model
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` ``(B, *in_shape)`` -> logits ``(B, K)``, or ``(logits, feats)`` with one ``(B, C_i, H_i, W_i)``
        per stage."""
        out = self.body(self._prepare(x))
        if not return_features:
            return out["logits"]
        return out["logits"], [out[f"stage_{i}"] for i in range(len(self.nodes))]


def _align(
    model: nn.Module, name: str, num_classes: int, in_shape, student: nn.Module
) -> TorchvisionClassifier:
    """The smallest input scale (1, 2, 4, 8 x the image side) at which stages of ``model`` have, in order, the
    spatial sizes of ``student``'s stages; those stages become the nodes."""
    was_training = student.training
    student.eval()
    with torch.no_grad():
        out = student(torch.zeros(1, *in_shape), return_features=True)
    student.train(was_training)
    if not (isinstance(out, tuple) and all(f.dim() == 4 for f in out[1])):
        raise ValueError(
            "align_to: the student must return (B, C, H, W) stage features (a labkit cnn or resnet)."
        )
    want = [tuple(f.shape[2:]) for f in out[1]]
    tried = []
    for scale in (1, 2, 4, 8):
        size = None if scale == 1 else (scale * in_shape[1], scale * in_shape[2])
        wrapped = TorchvisionClassifier(model, num_classes, in_shape, input_size=size, name=name)
        have = dict(zip(wrapped.stage_sizes, wrapped.nodes))  # the last node at each size
        tried.append(f"{scale}x: {wrapped.stage_sizes}")
        if all(w in have for w in want):
            return TorchvisionClassifier(model, num_classes, in_shape, [have[w] for w in want], size, name)
    raise ValueError(
        f"align_to: no input scale gives {name} stages of the student's sizes {want}; tried {'; '.join(tried)}. "
        "Pass nodes=... and input_size=... by hand, or use logit methods only."
    )


def torchvision_model(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    *,
    in_shape: Sequence[int] = (3, 224, 224),
    nodes: Sequence[str] | None = None,
    input_size: tuple[int, int] | None = None,
    align_to: nn.Module | None = None,
) -> TorchvisionClassifier:
    """A torchvision classification model (e.g. ``"resnet18"``, ``"mobilenet_v3_small"``) with its final layer
    replaced for ``num_classes``, as a ``TorchvisionClassifier`` (logits, or logits and per-stage features).

    ``pretrained`` downloads ImageNet weights (online); ``in_shape``: one image of your data ``(C, H, W)``;
    ``nodes``: the stage nodes (default: see the module docstring); ``input_size``: resize the images to this
    ``(H, W)`` before the model (to align its stages with a student's, or to get nearer ImageNet's 224);
    ``align_to``: a labkit student whose stages the teacher's must pair with (hints, attention): the smallest
    input scale (1, 2, 4 or 8 x the image side) whose stages have the student's spatial sizes, and those stages.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a torchvision model name such as 'resnet18', got {name!r}.")
    check_positive_int(num_classes, "num_classes", minimum=2)
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True or False, got {pretrained!r}.")
    in_shape, nodes = _check_in_shape(in_shape), _check_nodes(nodes)
    input_size = _check_pair(input_size, "input_size")
    if align_to is not None and not isinstance(align_to, nn.Module):
        raise TypeError(
            f"align_to must be a labkit student (nn.Module) or None, got {type(align_to).__name__}."
        )
    tv = _torchvision()
    check_choice(name, tv.models.list_models(module=tv.models), "torchvision model")
    model = tv.models.get_model(name, weights="DEFAULT" if pretrained else None)
    _replace_head(model, name, num_classes)
    if align_to is not None:
        if nodes is not None or input_size is not None:
            raise ValueError("align_to chooses nodes and input_size: pass either align_to or those two.")
        return _align(model, name, num_classes, tuple(in_shape), align_to)
    return TorchvisionClassifier(model, num_classes, in_shape, nodes=nodes, input_size=input_size, name=name)
