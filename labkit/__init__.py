"""KD Lab's helper package: data, models, distillation objectives, one training loop, metrics, plots.

The notebooks import everything from here: ``import labkit as lk``. See docs/ARCHITECTURE.md.
"""

from .config import PROFILES, Profile, get_profile
from .data import (
    DATASETS,
    DataSplits,
    ImageData,
    batches,
    cache_dir,
    few_labels_split,
    load_dataset,
    train_val_split,
)
from .losses import (
    OBJECTIVES,
    HintLoss,
    attention_map,
    attention_transfer_loss,
    get_objective,
    hinton_kd_loss,
    kd_kl_loss,
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
from .nbtools import Timer, expect, expect_between, hardware, show_source
from .plotting import plot_comparison, plot_history, plot_reliability, plot_temperature
from .training import (
    METHODS,
    History,
    TrainConfig,
    fit,
    get_device,
    load_weights,
    save_weights,
    seed_everything,
    train_or_load,
)
from .widgets import softened_table, temperature_explorer

__version__ = "0.1.0"
