import pytest
import yaml

from defusion_rt.config import Settings, load_settings
from defusion_rt.errors import UserError
from conftest import ROOT


def test_shipped_config_equals_the_defaults():
    assert load_settings(ROOT / "configs" / "defusion.yaml").to_dict() == Settings().to_dict()


@pytest.mark.parametrize("text, message", [
    ("train:\n  lrr: 0.1\n", "unknown config key 'train.lrr'; did you mean 'train.lr'"),
    ("trian:\n  lr: 0.1\n", "unknown config key 'trian'; did you mean 'train'"),
    ("train:\n  batch: four\n", "'train.batch' must be int"),
    ("train:\n  channels_last: 1\n", "'train.channels_last' must be bool"),
    ("train: [1, 2]\n", "section 'train' must be a mapping"),
    ("train: {crop: 64\n", "not valid YAML: expected ',' or '}', but got '<stream end>' at line 2, column 1; fix"),
    ("train:\n  crop: 64\n   batch: 3\n", "mapping values are not allowed here at line 3, column 9"),
    ("train:\n  batch: 0\n", "'train.batch' must be 1 or more, got 0"),
    ("train:\n  workers: -2\n", "'train.workers' must be 0 or more, got -2"),
    ("fusion:\n  batch: -3\n", "'fusion.batch' must be 1 or more, got -3"),
    ("train:\n  amp: fp8\n", "config key 'train.amp' cannot be 'fp8'; choose one of: auto, bf16, fp16, off"),
    ("model:\n  name: defusion_fats\n", "did you mean 'defusion_fast'?"),
    # pipeline files (pipelines/*.yaml) are checked the same way
    ("register:\n  fov: crpo\n", "'register.fov' cannot be 'crpo'; did you mean 'crop'?"),
    ("render:\n  codec: x265\n", "'render.codec' cannot be 'x265'; choose one of: auto, h264, mp4v"),
    ("fusion:\n  method: averge\n", "did you mean 'average'?"),
    ("sources:\n  mode: life\n", "did you mean 'live'?"),
    ("fusion:\n  precision: fp32x\n", "did you mean 'fp32'?"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    from defusion_rt.pipeline import load_pipeline
    path = tmp_path / "c.yaml"
    path.write_text(text)
    load = load_pipeline if text.split(":")[0] in ("register", "render", "fusion", "sources") else load_settings
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace("?", r"\?")):
        load(path)


def test_overrides_and_int_to_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 1, "crop": 64}}))
    s = load_settings(path)
    assert s.train.lr == 1.0 and isinstance(s.train.lr, float) and s.train.crop == 64 and s.train.batch == 4


def test_command_line_values_are_checked_like_the_file_and_win_over_it(tmp_path):
    from defusion_rt.pipeline import load_pipeline
    path = tmp_path / "p.yaml"
    path.write_text("fusion: {method: max, batch: 4}\n")
    s = load_pipeline(path, {"fusion": dict(method="average", batch=None)})
    assert (s.fusion.method, s.fusion.batch) == ("average", 4)
    with pytest.raises(UserError, match="did you mean 'laplacian'"):
        load_pipeline(path, {"fusion": dict(method="laplacain")})


def test_the_model_choices_are_the_registered_variants():
    from typing import get_args, get_type_hints
    from defusion_rt.config import ModelSettings
    from defusion_rt.fusion import FusionSettings
    from defusion_rt.model import VARIANTS
    assert set(get_args(get_type_hints(ModelSettings)["name"])) == set(VARIANTS)
    assert set(get_args(get_type_hints(FusionSettings)["model"])) == {"auto", *VARIANTS}


def test_every_command_line_option_says_what_it_does():
    from defusion_rt.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    silent = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in sub.choices.items() for a in p._actions
              if not a.help and a.dest != "help"]
    assert not silent, silent


@pytest.mark.parametrize("args, message", [
    (["bench", "--batch", "1,x"], "not a comma-separated list of positive integers"),
    (["bench", "--sizes", "32"], "bad size '32'; write WIDTHxHEIGHT"),
    (["bench", "--e2e-methods", "avg"], "unknown method 'avg'"),
    (["calibrate", "--a", "x", "--b", "y", "--board", "9by6"], "is not COLSxROWS"),
])
def test_lists_and_sizes_on_the_command_line_are_parsed_with_one_line_errors(capsys, args, message):
    from defusion_rt.cli import main
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
