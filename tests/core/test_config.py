"""Composition, +smoke ordering and validation of every experiment config."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from zoolab.config import CONF_DIR, config_hash, prepare_config
from zoolab.errors import ZoolabError

# The experiments are the files of conf/exp itself; the family bases in conf/exp/base/ are not options.
EXPS = sorted(p.stem for p in (CONF_DIR / "exp").glob("*.yaml"))

# The cherry-pit report's rows in its order (Model, Variant), each with the experiment that reproduces it.
CHERRY_REPORT_ROWS = [
    ("ResNet50", "Production (Baseline)", "cherry_resnet50_baseline_fc_only"),
    ("ResNet50", "Augmented (Norm)", "cherry_resnet50_aug"),
    ("ResNet50", "Scheduler (Norm)", "cherry_resnet50_aug_cosine"),
    ("MobileNetV3", "Large (Norm)", "cherry_mobilenetv3_large"),
    ("EfficientNet", "B0 (Norm)", "cherry_efficientnet_b0"),
    ("ResNet50", "Augmented (Unnorm, Fixed)", "cherry_resnet50_aug_unnorm"),
    ("ResNet50", "Differential LR (layer4 1e-5, fc 1e-3)", "cherry_resnet50_difflr"),
    ("ResNet18", "Augmented (Unnorm)", "cherry_resnet18_aug_unnorm"),
    ("ConvNeXt V2-Tiny", "FCMAE + enhanced aug", "cherry_convnextv2_tiny"),
    ("ConvNeXt V2-Tiny", "+ label smoothing 0.1", "cherry_convnextv2_tiny_ls"),
    ("EfficientNet-B2", "Baseline", "cherry_efficientnet_b2"),
    ("EfficientNet-B2", "+ label smoothing 0.1", "cherry_efficientnet_b2_ls"),
    ("DINOv2 ViT-S/14", "Linear probe", "cherry_dinov2_vits14_probe"),
    ("ResNet50", "3-class direct (clean/maybe/pit)", "cherry_resnet50_3class"),
    ("ResNet50", "Two-stage (production method)", "cherry_resnet50_two_stage"),
]


def test_there_is_one_exp_per_cherry_report_row(compose):
    """Every report row has exactly one experiment, whose labels and position are that row's."""
    assert sorted(exp for *_, exp in CHERRY_REPORT_ROWS) == [e for e in EXPS if e.startswith("cherry_")]
    for order, (model, variant, exp) in enumerate(CHERRY_REPORT_ROWS, start=1):
        cfg, _ = compose([f"+exp={exp}"])
        assert (cfg.report.model, cfg.report.variant, cfg.report.order) == (model, variant, order), exp


@pytest.mark.parametrize("exp", EXPS)
def test_every_exp_composes_validates_and_carries_provenance(compose, exp):
    overrides = [f"+exp={exp}"]
    cfg, choices = compose(overrides)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    assert cfg.exp == exp
    assert cfg.exp_id, f"{exp} has no exp_id"
    # A comma inside an unquoted YAML flow mapping silently splits a label into a stray key.
    if exp.startswith("sardet_"):
        assert cfg.report.setting and cfg.report.table in ("key", "ablation", "other", "vis")
        assert set(cfg.report) <= {"table", "order", "setting", "config", "notes"}, dict(cfg.report)
        # E0021-E0025 were never run in the original: nothing to report beside ours.
        # Visualisation rows (E0010/E0011) have painted images, not numbers.
        assert cfg.reported or "never run" in cfg.report.notes or cfg.report.table == "vis", exp
        return
    assert cfg.reported, f"{exp} has no reported numbers"
    assert cfg.report.model and cfg.report.variant
    allowed = {"model", "variant", "order", "profile", "reported_avg", "label", "moves", "loss_head", "baseline",
               "scheduler", "extra", "differs", "remarks"}  # the last four: PromptSG columns read from the config
    assert set(cfg.report) <= allowed, dict(cfg.report)


@pytest.mark.parametrize("exp", EXPS)
def test_smoke_wins_in_either_order(compose, exp):
    for overrides in ([f"+exp={exp}", "+smoke=cpu"], ["+smoke=cpu", f"+exp={exp}"]):
        cfg, choices = compose(overrides)
        cfg = prepare_config(cfg, overrides, choices.get("dataset"))
        assert cfg.trainer.max_epochs <= 3, overrides
        assert cfg.backbone.pretrained is False
        source = cfg.dataset.get("root") if "root" in cfg.dataset else cfg.dataset.get("cache")
        assert source._target_.startswith("zoolab.data.synthetic."), overrides


def test_smoke_keeps_architecture_and_classes(compose):
    overrides = ["+smoke=cpu", "+exp=cherry_convnextv2_tiny"]
    cfg, choices = compose(overrides)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    assert cfg.backbone.name == "convnextv2_tiny.fcmae_ft_in1k"
    assert list(cfg.dataset.classes) == ["cherry_clean", "cherry_pit"]
    assert cfg.dataset.augment == "enhanced"


def test_explicit_override_beats_smoke(compose):
    overrides = ["+exp=cherry_resnet18_aug_unnorm", "+smoke=cpu", "trainer.max_epochs=5"]
    cfg, choices = compose(overrides)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    assert cfg.trainer.max_epochs == 5


def test_misspelt_key_names_path_and_suggestion(compose):
    overrides = ["+exp=cherry_resnet18_aug_unnorm", "+trainer.max_epoch=3"]
    cfg, choices = compose(overrides)
    with pytest.raises(ZoolabError, match=r"trainer\.max_epoch.*did you mean 'max_epochs'"):
        prepare_config(cfg, overrides, choices.get("dataset"))


def test_misspelt_root_key(compose):
    overrides = ["+exp=cherry_resnet18_aug_unnorm", "+sed=3"]
    cfg, choices = compose(overrides)
    with pytest.raises(ZoolabError, match=r"unknown config key 'sed'.*did you mean 'seed'"):
        prepare_config(cfg, overrides, choices.get("dataset"))


def test_wrong_scalar_type_is_reported(compose):
    overrides = ["+exp=cherry_resnet18_aug_unnorm", "backbone.normalize=maybe"]
    cfg, choices = compose(overrides)
    with pytest.raises(ZoolabError, match=r"backbone\.normalize"):
        prepare_config(cfg, overrides, choices.get("dataset"))


def test_config_hash_tracks_values(compose):
    cfg_a, _ = compose(["+exp=cherry_resnet18_aug_unnorm"])
    cfg_b, _ = compose(["+exp=cherry_resnet18_aug_unnorm", "optim.lr=0.5"])
    assert config_hash(cfg_a) != config_hash(cfg_b)
    assert config_hash(cfg_a) == config_hash(OmegaConf.create(OmegaConf.to_container(cfg_a, resolve=True)))


def test_smoke_caps_family_epoch_counts(compose):
    overrides = ["+exp=cherry_resnet50_two_stage", "+smoke=cpu"]
    cfg, choices = compose(overrides)
    cfg = prepare_config(cfg, overrides, choices.get("dataset"))
    from zoolab.families.base import Phase
    from zoolab.pipeline import phase_epochs

    # The config keeps the experiment's stage lengths (what runs is what is printed); the pipeline caps
    # every phase of a smoke run at trainer.max_epochs.
    assert cfg.task.stages.stage1_epochs == 30 and cfg.trainer.max_epochs == 2
    assert phase_epochs(cfg, Phase("stage1", None, None, max_epochs=cfg.task.stages.stage1_epochs)) == 2
    assert phase_epochs(cfg, Phase("fit", None, None)) == 2
    assert cfg.reported  # provenance untouched
