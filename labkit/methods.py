"""The distillation methods ``lk.fit`` trains with: a registry of small distiller modules, ``METHODS``.

A distiller turns one batch's outputs (student logits and, for feature methods, per-stage features; the teacher's
logits or a stack of K teachers' logits) into the loss. Subclasses may own parameters (the FitNets regressor, a
learned teacher weighting), which train with the student. Register a new method by adding a subclass to
``METHODS`` (lesson 01 registers its buggy ``negated_ce`` this way, for one experiment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .data import ImageData
from .losses import (
    HintLoss,
    attention_map,
    attention_transfer_loss,
    hinton_kd_terms,
    label_distillation_loss,
    labelled_cross_entropy,
)
from .metrics import predict_logits
from .multiteacher import TeacherEnsemble, multi_teacher_kd_loss

if TYPE_CHECKING:
    from .training import TrainConfig

__all__ = ["METHODS", "Attention", "CrossEntropy", "Distiller", "Hint", "Hinton", "LabelMSE", "MultiTeacher"]


class Distiller(nn.Module):
    """Turns one batch's outputs into a loss. Subclasses may own parameters (e.g. a hint regressor).

    ``forward`` returns the sum of the loss's weighted *parts* and keeps them, detached, in ``self.parts``
    (``{"ce": (1 - alpha) CE, "kd": alpha T^2 KL, "hint": beta * hint, ...}``, as mdistiller's distillers
    return a ``losses_dict``): ``lk.fit`` averages each part over an epoch into the history (``loss_ce``,
    ``loss_kd`` ...), so which term drives training is read off the run.
    """

    needs_teacher = True
    needs_features = False

    def __init__(self, cfg: TrainConfig, student: nn.Module, teacher: nn.Module | None) -> None:
        super().__init__()
        from .training import TrainConfig  # at run time: training imports this module

        if not isinstance(cfg, TrainConfig):
            raise TypeError(
                f"cfg must be an lk.TrainConfig (temperature, alpha, beta ...), got {type(cfg).__name__}."
            )
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module, got {type(student).__name__}.")
        if self.needs_teacher and not isinstance(teacher, nn.Module):
            raise TypeError(
                f"method {type(self).__name__} distils from a teacher: teacher must be an nn.Module, got "
                f"{type(teacher).__name__}."
            )
        self.cfg = cfg
        self.parts: dict[str, torch.Tensor] = {}

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None) -> dict[str, torch.Tensor]:
        """The weighted parts of the loss, by name; their sum is the loss."""
        raise NotImplementedError

    def forward(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None) -> torch.Tensor:
        parts = self.terms(s_logits, y, t_logits, s_feats, t_feats)
        self.parts = {k: v.detach() for k, v in parts.items()}
        return sum(parts.values())

    def teacher_features(self, t_feats: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """What ``terms`` needs of the teacher's per-stage features, one entry per stage (``None``: unused).

        ``lk.fit`` passes every batch's teacher features through this, and when the images are not augmented it
        computes it once for the whole training set instead (the feature cache), so a feature method costs a
        student step, not a student step plus a teacher forward pass."""
        return list(t_feats)

    @staticmethod
    def teacher_outputs(teacher: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The teacher's logits for all of ``x`` at once (the cache): ``(N, K)``."""
        return predict_logits(teacher, x, batch_size=1024, device=device)

    @staticmethod
    def teacher_shape(train: ImageData, teacher: nn.Module | None) -> tuple[int, ...]:
        return (len(train), train.num_classes)


def _check_feats(method: str, s_feats, t_feats) -> None:
    for who, feats in (("s_feats", s_feats), ("t_feats", t_feats)):
        if not isinstance(feats, (list, tuple)) or len(feats) == 0:
            raise ValueError(
                f"method {method!r} needs the per-stage features of student and teacher: {who} must be a list of "
                f"tensors (model(x, return_features=True)[1]), got {type(feats).__name__}."
            )
    if len(s_feats) != len(t_feats):
        raise ValueError(
            f"method {method!r} pairs stages one to one: {len(s_feats)} student vs {len(t_feats)} teacher stages."
        )


class CrossEntropy(Distiller):
    """From scratch: CE on labelled examples (target -1 = unlabelled, ignored)."""

    needs_teacher = False

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        return {"ce": labelled_cross_entropy(s_logits, y)}


class Hinton(Distiller):
    """Response-based KD on logits: ``lk.hinton_kd_loss`` split into its two weighted parts."""

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        return hinton_kd_terms(s_logits, t_logits, y, self.cfg.temperature, self.cfg.alpha)


class Hint(Hinton):
    """KD plus a FitNets hint on stage ``cfg.hint_layer`` of student and teacher."""

    needs_features = True

    def __init__(self, cfg, student, teacher):
        super().__init__(cfg, student, teacher)
        for who, m in (("student", student), ("teacher", teacher)):
            if not hasattr(m, "feature_channels"):
                raise ValueError(
                    f"method 'hint' needs a {who} that returns per-stage features (a model with feature_channels, "
                    f"e.g. lk.build_model('cnn', ...)), got {type(m).__name__}."
                )
        i = cfg.hint_layer
        stages = min(len(student.feature_channels), len(teacher.feature_channels))
        if isinstance(i, bool) or not isinstance(i, int) or not -stages <= i < stages:
            raise ValueError(
                f"hint_layer must be a stage index in {-stages}..{stages - 1} (student "
                f"{len(student.feature_channels)} stages, teacher {len(teacher.feature_channels)}; -1 = the last), "
                f"got {i!r}."
            )
        sc, tc = student.feature_channels[i], teacher.feature_channels[i]
        spatial = getattr(student, "spatial_features", True) and getattr(teacher, "spatial_features", True)
        self.hint = HintLoss(sc, tc, spatial=spatial)

    def teacher_features(self, t_feats):
        i = self.cfg.hint_layer % len(t_feats)  # only the hint stage (B, C_t, H, W); hint_layer may be -1
        return [f if j == i else None for j, f in enumerate(t_feats)]

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        _check_feats("hint", s_feats, t_feats)
        i = self.cfg.hint_layer
        return {
            **super().terms(s_logits, y, t_logits),
            "hint": self.cfg.beta * self.hint(s_feats[i], t_feats[i]),
        }


class Attention(Hinton):
    """KD plus attention transfer on every paired stage."""

    needs_features = True

    def teacher_features(self, t_feats):
        return [attention_map(f) for f in t_feats]  # (B, H_j * W_j) per stage: the maps, not the features

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        _check_feats("attention", s_feats, t_feats)
        at = self.cfg.beta * attention_transfer_loss(s_feats, t_feats)  # teacher maps or features
        return {**super().terms(s_logits, y, t_logits), "attention": at}


class MultiTeacher(Distiller):
    """Many teachers at once; the weighting strategy is a fresh module per run (learned weights train here)."""

    def __init__(self, cfg, student, teacher):
        super().__init__(cfg, student, teacher)
        if not isinstance(teacher, TeacherEnsemble):
            raise ValueError(
                "method 'multi' needs teacher=lk.TeacherEnsemble([teacher_1, ...], num_classes, weighting=...), "
                f"got {type(teacher).__name__}."
            )
        self.weighting = teacher.make_weighting()

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        w = self.weighting(t_logits, y)  # (B, K)
        kd = multi_teacher_kd_loss(s_logits, t_logits, y, w, self.cfg.temperature, self.cfg.alpha)
        aux = self.weighting.aux_loss
        return {"kd": kd, **({"weighting": aux} if torch.is_tensor(aux) else {})}

    @staticmethod
    def teacher_outputs(teacher, x, device):
        return teacher.predict_stack(x, device=device)  # (N, K, C), once for all K teachers

    @staticmethod
    def teacher_shape(train, teacher):
        return (len(train), len(teacher.teachers), train.num_classes)


class LabelMSE(Distiller):
    """KD with the KL replaced by the squared error between probabilities (``lk.label_distillation_loss``)."""

    def terms(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        return {"mse": label_distillation_loss(s_logits, t_logits, y, self.cfg.temperature, self.cfg.alpha)}


METHODS: dict[str, type[Distiller]] = {
    "ce": CrossEntropy,
    "kd": Hinton,
    "hint": Hint,
    "attention": Attention,
    "multi": MultiTeacher,
    "mse": LabelMSE,
}
