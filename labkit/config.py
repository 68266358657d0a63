"""Run profiles: one knob (``PROFILE``) scales every notebook from a CI smoke test to the reference run.

* ``smoke``   - CI: offline, scikit-learn digits, seconds per notebook on a 2-core CPU.
* ``default`` - the real lesson on a laptop CPU or a Colab GPU: Fashion-MNIST (real data, falls back to
  digits loudly when it cannot be loaded), a few minutes per notebook.
* ``full``    - a GPU: CIFAR-10 with a ResNet teacher, the numbers in ``results/REFERENCE.md``.

Notebooks read their settings from ``get_profile(PROFILE)`` and may override single fields
(``get_profile("default", student_epochs=3)``). The environment variable ``LABKIT_PROFILE`` overrides the
notebook's choice (used by the nbval run in CI); the override is announced, never silent.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from ._validate import check_choice

__all__ = ["PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Everything that changes between a smoke run and a full run. Field names match notebook parameters."""

    name: str
    dataset: str  # "digits" | "fashion_mnist" | "cifar10"
    max_train: int | None  # cap on training images (class-stratified), None = all
    max_test: int | None
    seeds: tuple[int, ...]  # student runs are repeated over these seeds (mean +- std)
    teacher_model: str  # a key of labkit.models.MODELS
    teacher_kwargs: dict = field(default_factory=dict)
    student_model: str = "cnn"
    student_kwargs: dict = field(default_factory=dict)
    kd_student_model: str = "mlp"  # lesson 02's student (an MLP, as in Hinton et al.'s MNIST experiments)
    kd_student_kwargs: dict = field(default_factory=dict)
    kd_labelled: int | None = None  # labelled images lesson 02's main comparison trains on (None = all)
    tiny_student_model: str = "mlp"  # the capacity-gap student of lesson 02
    tiny_student_kwargs: dict = field(default_factory=dict)
    teacher_epochs: int = 10
    augment: bool = False  # image teachers train on random crop + flip (TrainConfig.augment), on the device
    student_epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    labels_per_class: int = 20  # few-labels experiment: labelled examples per class
    # lesson 03 (feature KD): optimisation steps of every student run, and their batch size
    fkd_steps: int = 300
    fkd_batch_size: int = 64
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # sweeps
    alphas: tuple[float, ...] = (0.0, 0.5, 0.9)
    # lesson 08 (multi-teacher KD): experts on class subsets (and, in its second part, one generalist that knows
    # every class), distilled into one student that has few labels and an unlabelled transfer set
    mt_experts: tuple[tuple[int, ...], ...] = ((0, 2, 3, 4, 6), (1, 5, 7, 8, 9))  # each expert's classes
    mt_expert_model: str = "mlp"
    mt_expert_kwargs: dict = field(default_factory=lambda: {"hidden": (256,)})
    mt_expert_epochs: int = 6
    mt_generalist_model: str = "mlp"  # the generalist: the experts' recipe on every class
    mt_generalist_kwargs: dict = field(default_factory=lambda: {"hidden": (256,)})
    mt_generalist_epochs: int = 6
    mt_student_model: str = "mlp"
    mt_student_kwargs: dict = field(default_factory=lambda: {"hidden": (64,)})
    mt_labels_per_class: int = 10  # the student's labels; the rest of the training set is unlabelled
    # lesson 07: the ensemble's members as (model, kwargs); member k is trained with seed SEED + k
    ens_members: tuple[tuple[str, dict], ...] = (
        ("resnet", {"width": 8, "blocks": (1, 1, 1)}),
        ("cnn", {"width": 8, "stages": 3}),
        ("cnn", {"width": 8, "stages": 3}),
        ("mlp", {"hidden": (256,)}),
    )
    ens_generations: int = 2  # born-again generations after generation 0
    # lesson 04 (transformers): checkpoints are Hub ids, local folders, or "tiny-*" config-built BERTs (offline)
    tf_dataset: str = "sst2"  # a key of labkit.text.TEXT_DATASETS
    tf_max_train: int | None = 6_000  # training sentences read (stratified subsample; None = all)
    tf_unlabelled: int = 3_000  # of those, the transfer set (no labels); the teacher trains on the rest
    tf_labelled: int | None = 100  # the students' labels, a random part of the teacher's (None = all)
    tf_max_test: int | None = None
    tf_max_length: int = 64  # tokens per sentence (truncation)
    tf_teacher: str = "sentence-transformers/all-MiniLM-L6-v2"
    tf_teacher_epochs: float = 1.0  # fine-tuning of the teacher on the task (0: the checkpoint already is)
    tf_teacher_lr: float = 1e-4
    tf_student: str = "sentence-transformers/all-MiniLM-L6-v2"
    tf_student_layers: int | None = 2  # keep the first n layers of the student checkpoint (None: all)
    tf_steps: int = 100  # optimisation steps of every student arm (equal budgets, however large its data)
    tf_lr: float = 5e-4
    tf_batch_size: int = 32
    tf_temperature: float = 2.0
    tf_alpha: float = 0.9
    tf_layer_weight: float = 1.0  # weight of the hidden-state and of the attention term
    tf_layer_kd: bool = False  # train the hidden-state + attention arm too (the teacher runs on every batch)
    tf_freeze_embeddings: bool = True  # students keep the checkpoint's token embeddings (pretrained ones)
    tf_seeds: tuple[int, ...] = (0, 1, 2)
    tf_bug_steps: int = 100  # lesson 04's two classic-bug runs and their correct run (a bug shows early)
    # lesson 05 (pseudo-labels): the teacher learns from one half of the training set, the student gets
    # pl_labels_per_class true labels per class from the other half; the rest of that half is unlabelled
    pl_labels_per_class: int = 20
    pl_budgets: tuple[int, ...] = (5, 20, 100, 500)  # labels per class along the label-budget curve
    pl_thresholds: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99)  # confidence thresholds for hard pseudo-labels
    # soft targets on the pool: T and alpha chosen together on validation (alpha near 1: the CE term averages over
    # the few labelled rows of a batch, so a low alpha overweights them; Hinton et al. 2015 favour a low CE weight)
    pl_temperatures: tuple[float, ...] = (1.0, 2.0, 4.0)
    pl_alphas: tuple[float, ...] = (0.5, 0.9, 1.0)
    # lesson 06 (cross-domain): text domains (labkit.text) and bag-of-words sizes
    xd_source: str = "books"
    xd_targets: tuple[str, ...] = ("dvd", "kitchen")
    xd_max_features: int = 5_000
    xd_teacher_hidden: tuple[int, ...] = (256,)
    xd_epochs: int = 15
    description: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dataset="digits",
        max_train=None,
        max_test=None,
        seeds=(0, 1),
        teacher_model="resnet",
        teacher_kwargs={"width": 8, "blocks": (1, 1, 1)},
        student_model="cnn",
        student_kwargs={"width": 4, "stages": 3, "pool": 2},
        kd_student_kwargs={"hidden": (16,)},
        kd_labelled=500,
        fkd_steps=40,
        tiny_student_kwargs={"hidden": (4,)},
        teacher_epochs=4,
        student_epochs=3,
        batch_size=64,
        labels_per_class=5,
        temperatures=(1.0, 4.0),
        alphas=(0.0, 0.9),
        mt_expert_kwargs={"hidden": (64,)},
        mt_expert_epochs=15,
        mt_generalist_kwargs={"hidden": (64,)},
        mt_generalist_epochs=15,
        mt_labels_per_class=10,
        ens_members=(
            ("resnet", {"width": 8, "blocks": (1, 1, 1)}),
            ("cnn", {"width": 8, "stages": 3}),
            ("cnn", {"width": 8, "stages": 3}),
            ("mlp", {"hidden": (64,)}),
        ),
        ens_generations=2,
        tf_dataset="toy_movies",
        tf_max_train=2_000,
        tf_unlabelled=1_000,
        tf_labelled=200,
        tf_max_test=None,
        tf_teacher="tiny-teacher",
        tf_teacher_epochs=5.0,
        tf_teacher_lr=3e-3,
        tf_student="tiny-student",
        tf_student_layers=None,
        tf_steps=100,
        tf_lr=3e-3,
        tf_layer_kd=True,
        tf_freeze_embeddings=False,  # a tiny BERT's embeddings are random: they must learn
        tf_seeds=(0, 1),
        pl_labels_per_class=5,
        pl_budgets=(2, 5, 20),
        pl_temperatures=(1.0, 4.0),
        pl_alphas=(0.5, 1.0),
        xd_source="toy_books",
        xd_targets=("toy_dvd", "toy_kitchen"),
        xd_max_features=2_000,
        xd_teacher_hidden=(64,),
        xd_epochs=5,
        description="CI: offline digits, tiny models, seconds on a 2-core CPU",
    ),
    "default": Profile(
        name="default",
        dataset="fashion_mnist",
        max_train=20_000,
        max_test=5_000,
        seeds=(0, 1, 2),
        teacher_model="resnet",
        teacher_kwargs={"width": 16, "blocks": (1, 1, 1)},
        student_model="cnn",
        # a 4x4 grid head: the classifier sees where a feature is, not only that it is
        student_kwargs={"width": 8, "stages": 3, "pool": 4},
        kd_student_kwargs={"hidden": (16,)},
        kd_labelled=1_000,
        fkd_steps=300,  # of fkd_batch_size=64, screened on validation (2 seeds) against 250 of 128
        tiny_student_kwargs={"hidden": (4,)},
        teacher_epochs=6,
        student_epochs=8,
        batch_size=128,
        labels_per_class=20,
        # lesson 08: the dataclass defaults (MLP teachers, tops vs the rest, 10 labels per class)
        ens_members=(  # four MLPs of similar strength and different shapes: the small ResNets trained less
            ("mlp", {"hidden": (256,)}),  # accurately on this budget and far slower on a CPU
            ("mlp", {"hidden": (512,)}),
            ("mlp", {"hidden": (256, 128)}),
            ("mlp", {"hidden": (512, 256)}),
        ),
        ens_generations=2,
        tf_dataset="sst2",
        tf_max_train=6_000,
        tf_unlabelled=3_000,
        tf_labelled=100,
        tf_teacher="sentence-transformers/all-MiniLM-L6-v2",
        tf_teacher_epochs=1.0,
        tf_student="sentence-transformers/all-MiniLM-L6-v2",
        tf_student_layers=2,
        tf_steps=80,  # validation, seeds 0-2: headline +7.2 at 70 steps, +8.7 at 80, +9.6 at 100; 100 ran over 300 s
        tf_bug_steps=40,
        tf_lr=5e-4,
        tf_layer_kd=False,
        tf_seeds=(0, 1, 2),
        description="laptop CPU or Colab GPU: Fashion-MNIST, minutes per notebook",
    ),
    "full": Profile(
        name="full",
        dataset="cifar10",
        max_train=None,
        max_test=None,
        seeds=(0, 1, 2),
        teacher_model="resnet",
        teacher_kwargs={"width": 32, "blocks": (2, 2, 2)},
        student_model="cnn",
        student_kwargs={"width": 16, "stages": 3, "pool": 4},
        fkd_steps=3_000,
        fkd_batch_size=128,
        kd_student_model="cnn",
        kd_student_kwargs={"width": 16, "stages": 3},
        kd_labelled=5_000,
        tiny_student_kwargs={"hidden": (16,)},
        teacher_epochs=30,
        augment=True,  # CIFAR-10 teachers overfit without crop + flip; the students train on the clean images
        student_epochs=30,
        batch_size=256,
        labels_per_class=100,
        temperatures=(1.0, 2.0, 4.0, 8.0, 16.0),
        alphas=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
        mt_experts=((0, 1, 8, 9), (2, 3, 4, 5, 6, 7)),  # CIFAR-10: vehicles, animals
        mt_expert_model="resnet",
        mt_expert_kwargs={"width": 16, "blocks": (1, 1, 1)},
        mt_expert_epochs=30,
        mt_generalist_model="resnet",
        mt_generalist_kwargs={"width": 16, "blocks": (1, 1, 1)},
        mt_generalist_epochs=30,
        mt_student_model="cnn",
        mt_student_kwargs={"width": 16, "stages": 3},
        mt_labels_per_class=100,
        ens_members=(
            ("resnet", {"width": 32, "blocks": (2, 2, 2)}),
            ("resnet", {"width": 16, "blocks": (2, 2, 2)}),
            ("cnn", {"width": 32, "stages": 3}),
            ("mlp", {"hidden": (512,)}),
        ),
        ens_generations=3,
        tf_dataset="sst2",
        tf_max_train=None,
        tf_unlabelled=30_000,
        tf_labelled=1_000,
        tf_teacher="textattack/bert-base-uncased-SST-2",
        tf_teacher_epochs=0.0,
        tf_student="google/bert_uncased_L-4_H-256_A-4",
        tf_student_layers=None,
        tf_steps=3_000,
        tf_bug_steps=300,
        tf_lr=1e-4,
        tf_layer_kd=True,
        tf_batch_size=64,
        tf_seeds=(0, 1, 2),
        pl_labels_per_class=50,
        pl_budgets=(10, 50, 250, 1_000),
        xd_teacher_hidden=(512,),
        xd_epochs=20,
        description="GPU: CIFAR-10, ResNet teacher, the reference results",
    ),
}


def get_profile(name: str = "default", **overrides) -> Profile:
    """The profile called ``name`` (or ``$LABKIT_PROFILE`` when set), with single fields overridden.

    >>> get_profile("smoke", student_epochs=1).student_epochs
    1
    """
    env = os.environ.get("LABKIT_PROFILE")
    if env and env != name:
        check_choice(env, PROFILES, "profile (from $LABKIT_PROFILE)")
        print(f"[labkit] PROFILE={name!r} overridden by the environment: LABKIT_PROFILE={env!r}")
        name = env
    check_choice(name, PROFILES, "profile")
    profile = PROFILES[name]
    known = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}; fields are: {', '.join(sorted(known))}.")
    return dataclasses.replace(profile, **overrides)
