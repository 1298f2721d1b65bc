"""The experiment files say only what makes their row: no recipe block restated across a family, and each
file carries its own identity (exp_id, report labels, reported numbers).

Family recipes live in conf/exp/base/ (not selectable by ``+exp=glob(...)``: Hydra lists only the files of
the group folder itself); an experiment inherits a base, or a sibling followed by ``base/new_row`` (which
drops the sibling's identity), through its defaults list.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from zoolab.config import CONF_DIR, prepare_config
from zoolab.errors import ZoolabError

EXP_DIR = CONF_DIR / "exp"
BASE_DIR = EXP_DIR / "base"
FAMILIES = ("cherry", "clf", "embed", "promptsg_vitb16", "promptsg_rn50", "clip_zeroshot", "sardet")
WINDOW = 3  # this many consecutive content lines restated in two files of a family is a shared recipe
EXPS = sorted(p.stem for p in EXP_DIR.glob("*.yaml"))
BASES = sorted(p.relative_to(EXP_DIR).with_suffix("").as_posix() for p in BASE_DIR.glob("*.yaml"))


def family_of_exp(stem: str) -> str | None:
    matches = [f for f in FAMILIES if stem.startswith(f + "_")]
    return max(matches, key=len) if matches else None


def families_of_base(stem: str) -> list[str]:
    """``base/cherry_enhanced`` belongs to cherry, ``base/promptsg`` to both promptsg families."""
    return [f for f in FAMILIES if stem == f or stem.startswith(f + "_") or f.startswith(stem + "_")]


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (a ``#`` inside quotes is kept)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def content_lines(text: str) -> list[str]:
    """Lines that set values: no blank or comment-only lines, no defaults list, trailing comments cut."""
    lines, in_defaults = [], False
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line.strip():
            continue
        top_level = not line[0].isspace() and not line.startswith("-")
        if top_level:
            in_defaults = line.startswith("defaults:")
        if not in_defaults:
            lines.append(line)
    return lines


def repeated_blocks(texts: dict[str, str], family_of) -> tuple[dict[str, list[tuple[str, ...]]], int, int]:
    """Per file, the windows of WINDOW content lines that another file of one of its families repeats;
    plus the number of content lines inside such windows and the number of content lines in all."""
    lines = {name: content_lines(text) for name, text in texts.items()}
    windows = {name: [tuple(ls[i:i + WINDOW]) for i in range(len(ls) - WINDOW + 1)] for name, ls in lines.items()}
    owners: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for name, wins in windows.items():
        for family in family_of(name):
            for win in wins:
                owners.setdefault((family, win), set()).add(name)
    found: dict[str, list[tuple[str, ...]]] = {}
    repeated_lines = 0
    for name, wins in windows.items():
        marked = set()
        for i, win in enumerate(wins):
            if any(len(owners[(family, win)]) > 1 for family in family_of(name)):
                found.setdefault(name, []).append(win)
                marked.update(range(i, i + WINDOW))
        repeated_lines += len(marked)
    return found, repeated_lines, sum(len(ls) for ls in lines.values())


def _families(name: str) -> list[str]:
    if name.startswith("base/"):
        return families_of_base(name.removeprefix("base/"))
    family = family_of_exp(name)
    return [family] if family else []


def exp_texts(exp_dir: Path = EXP_DIR) -> dict[str, str]:
    texts = {p.stem: p.read_text() for p in exp_dir.glob("*.yaml")}
    texts.update({f"base/{p.stem}": p.read_text() for p in (exp_dir / "base").glob("*.yaml")})
    return texts


def test_every_experiment_belongs_to_a_family():
    assert [e for e in EXPS if family_of_exp(e) is None] == []
    assert {family_of_exp(e) for e in EXPS} == set(FAMILIES)


def test_content_lines_skip_comments_and_the_defaults_list():
    text = ("# @package _global_\n# about\ndefaults:\n  - base/x   # why\n  - override /sched: none\n\n"
            "exp_id: A   # id\nreport: {note: \"a # b\"}\n")
    assert content_lines(text) == ["exp_id: A", 'report: {note: "a # b"}']


def test_repetition_is_detected():
    shared = "optim:\n  lr: 1.0e-4\n  weight_decay: 0.05\n"
    texts = {"sardet_a": "exp_id: A\n" + shared, "sardet_b": "exp_id: B\n" + shared, "cherry_c": shared}
    found, repeated, total = repeated_blocks(texts, _families)
    assert set(found) == {"sardet_a", "sardet_b"}  # cherry_c is another family
    assert (repeated, total) == (6, 11)


def test_no_recipe_block_is_restated_within_a_family():
    found, repeated, total = repeated_blocks(exp_texts(), _families)
    report = {name: ["\n".join(win) for win in wins[:2]] for name, wins in sorted(found.items())}
    assert not found, (f"{repeated} of {total} content lines restate a block of another file of their family; "
                       f"move it to conf/exp/base/ or inherit a sibling: {report}")


@pytest.mark.parametrize("exp", EXPS)
def test_each_experiment_file_carries_its_own_identity(compose, exp):
    own = OmegaConf.load(EXP_DIR / f"{exp}.yaml")
    for key in ("exp_id", "report", "reported"):
        assert key in own, f"conf/exp/{exp}.yaml does not set {key}"
    cfg, choices = compose([f"+exp={exp}"])
    assert choices["exp"] == exp and cfg.exp == exp
    assert cfg.exp_id == own.exp_id
    # Nothing of a sibling's numbers leaks in: the reported numbers are exactly the file's own.
    assert OmegaConf.to_container(cfg.reported) == OmegaConf.to_container(own.reported)
    composed_report = OmegaConf.to_container(cfg.report)
    for key, value in OmegaConf.to_container(own.report).items():
        assert composed_report[key] == value, (exp, key)


def test_exp_ids_are_unique():
    ids = [OmegaConf.load(EXP_DIR / f"{exp}.yaml").exp_id for exp in EXPS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_bases_are_not_experiment_options():
    """Globs and bash completion see the options Hydra lists for the group: the bases are not among them."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            assert sorted(loader.get_group_options("exp")) == EXPS
            parser = OverridesParser.create(config_loader=loader)
            cherry = list(parser.parse_overrides(["+exp=glob(cherry_*)"])[0].sweep_string_iterator())
    finally:
        GlobalHydra.instance().clear()
    assert cherry == [e for e in EXPS if e.startswith("cherry_")]
    assert BASES and not any(b.removeprefix("base/") in EXPS for b in BASES)


@pytest.mark.parametrize("base", BASES)
def test_a_base_alone_is_not_a_runnable_experiment(compose, base):
    overrides = [f"+exp={base}"]
    cfg, choices = compose(overrides)
    with pytest.raises(ZoolabError, match="exp_id"):
        prepare_config(cfg, overrides, choices.get("dataset"))
