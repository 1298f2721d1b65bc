"""zoolab.artifacts.experiments reads conf/exp as Hydra composes it, and the Makefile's targets as make runs them."""

from __future__ import annotations

import shutil

import pytest

from zoolab.artifacts.experiments import make_plan, read_experiments, select

# One per family and the longest defaults chains (sibling experiments, base/new_row, absolute entries).
SAMPLE = ["sardet_vis_lora_r16_fc1fc2", "sardet_lora_r16_fc1fc2", "cherry_convnextv2_tiny", "promptsg_vitb16_v11",
          "clip_zeroshot_rn50", "clf_dinov3_vitb16_mlp768", "cherry_resnet50_two_stage"]


@pytest.mark.parametrize("name", SAMPLE)
def test_reader_agrees_with_hydra(compose, name):
    from omegaconf import OmegaConf

    cfg, _ = compose([f"+exp={name}"])
    exp = next(e for e in read_experiments() if e.name == name)
    assert exp.exp_id == cfg.exp_id
    assert exp.task == cfg.task.name
    assert exp.seed == cfg.seed
    assert exp.reported == OmegaConf.to_container(cfg.reported)
    assert exp.report == OmegaConf.to_container(cfg.report)
    if exp.task == "visualize":
        assert exp.task_split == cfg.task.split


def test_every_experiment_is_read_and_bases_are_not():
    experiments = read_experiments()
    assert len(experiments) == len(list(experiments[0].path.parent.glob("*.yaml")))
    assert all(e.exp_id and not e.exp_id.startswith("${") for e in experiments)
    assert [e.exp_id for e in select(experiments, ["E0002"])] == ["E0002"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_plan_reads_the_reproduce_targets():
    plan = make_plan(env={"PATH": "/usr/bin:/bin"})
    (seeds_run,) = plan["sardet_lora_r16_fc1fc2"]
    assert seeds_run.target == "reproduce-sardet" and seeds_run.seeds == (0, 1, 2) and seeds_run.smoke
    assert seeds_run.out_dir == "multirun/reproduce-sardet/<timestamp>/seeds"
    assert seeds_run.command(real_data=True) == "python -m zoolab -m +exp=sardet_lora_r16_fc1fc2 seed=0,1,2 " \
                                                "keep_last_ckpt=false"
    assert "sardet_vis_lora_r16_fc1fc2" not in plan       # excluded from the glob
    sweep = [r for r in plan["clf_dinov3_vitb16_mlp512"] if r.target == "reproduce-classifier-sweep"]
    assert sweep[0].variants == 14                       # 7 profiles x 2 label smoothings
