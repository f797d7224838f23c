"""Settings: one resolved, typed configuration (defaults < recipe < kaggle-kit.toml < --set < flags, layered in
config/layers.py), recipes and durations. The public names are re-exported here."""

from kaggle_kit.config.checks import check_section, field_types, setting, value_problem
from kaggle_kit.config.layers import load_config
from kaggle_kit.config.project import (
    ACCELERATORS,
    CONFIG_FILE,
    SECTIONS,
    ColumnMap,
    DatasetsConfig,
    KernelConfig,
    PredictConfig,
    ProjectConfig,
    TrainConfig,
    accelerator_problem,
    check_ref,
    config_from_dict,
    with_overrides,
)

__all__ = ["ACCELERATORS", "CONFIG_FILE", "SECTIONS", "ColumnMap", "DatasetsConfig", "KernelConfig", "PredictConfig",
           "ProjectConfig", "TrainConfig", "accelerator_problem", "check_ref", "check_section", "config_from_dict",
           "field_types", "load_config", "setting", "value_problem", "with_overrides"]
