"""KD Lab's helper package: data, models, distillation objectives, one training loop, metrics, plots.

The notebooks import everything from here: ``import labkit as lk``. See docs/ARCHITECTURE.md.
"""

from . import (
    checks,  # exercise checks: lk.checks.check_kd_loss(your_fn)
    lm,  # language-model distillation: lk.lm.token_kl, generalized_jsd, on_policy_step, ...
)
from .byod import compare_objectives, load_csv, load_image_folder, tune_objective
from .byod_text import TEXT_COLUMNS, load_hf_text, load_text_file
from .compare import Arm, Comparison, compare
from .config import PROFILES, Profile, get_profile
from .data import (
    DATASETS,
    DataSplits,
    ImageData,
    batches,
    cache_dir,
    concat,
    few_labels_split,
    load_dataset,
    num_batches,
    per_class_budget,
    random_crop_flip,
    train_val_split,
)
from .ensemble import (
    EnsembleTeacher,
    born_again,
    dml_loss,
    inference_ms,
    label_distillation_loss,
    mutual_learning,
    prob_mse_loss,
)
from .losses import (
    OBJECTIVES,
    HintLoss,
    attention_map,
    attention_rows_kl,
    attention_transfer_loss,
    get_objective,
    hinton_kd_loss,
    kd_kl_loss,
    labelled_cross_entropy,
    soft_targets,
)
from .metrics import (
    accuracy,
    agreement,
    evaluate,
    expected_calibration_error,
    format_mean_std,
    kl_to_teacher,
    mean_std,
    predict_logits,
    summarize,
)
from .models import MODELS, build_model, clone_init, count_parameters, model_table, size_on_disk_mb
from .multiteacher import (
    WEIGHTINGS,
    TeacherEnsemble,
    check_weights,
    class_subset,
    expand_logits,
    fuse_teachers,
    make_weighting,
    multi_teacher_kd_loss,
    per_teacher_kl,
    stack_teacher_logits,
    teacher_accuracies,
)
from .nbtools import (
    Timer,
    expect,
    expect_between,
    hardware,
    read_records,
    record,
    redact_local_paths,
    run_records,
    show_source,
    use_records,
)
from .plotting import (
    plot_attention_maps,
    plot_comparison,
    plot_gradient_scale,
    plot_history,
    plot_reliability,
    plot_teacher_mix,
    plot_temperature,
)
from .text import TEXT_DATASETS, TextData, TextFeatures, TextSplits, load_text_dataset
from .training import (
    METHODS,
    History,
    TrainConfig,
    fit,
    get_device,
    is_main_process,
    launched_processes,
    load_weights,
    save_weights,
    seed_everything,
    train_or_load,
)
from .transfer import (
    DomainPair,
    PseudoLabels,
    domain_pair,
    domain_shift,
    pseudo_label_quality,
    pseudo_labels,
    with_pseudo_labels,
)
from .verdicts import METRICS, Metric, Verdict, simulate_rule
from .vision import TorchvisionClassifier, torchvision_model, torchvision_nodes
from .widgets import mixer_table, softened_table, teacher_mixer, temperature_explorer

# Hugging Face transformers (lesson 04): imported on first use, since `import transformers` takes seconds.
_LAZY = {
    **dict.fromkeys(
        ("CheckpointUnavailable", "TextCollator", "TokenizedText", "check_pair", "check_vocab", "find_checkpoint", "load_pretrained",
         "predict_text", "resolve_checkpoint", "tiny_checkpoint", "tokenize"),
        ".hf",
    ),
    **dict.fromkeys(
        ("DistillationTrainer", "DistillationTrainingArguments", "attention_dropout_off", "finetune_or_load",
         "transformer_kd_loss", "uniform_layer_map"),
        ".hf_trainer",
    ),
}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__version__ = "0.1.0"
