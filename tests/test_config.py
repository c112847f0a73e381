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
    ("train: {crop: 64\n", "not valid YAML"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_settings(path)


def test_overrides_and_int_to_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 1, "crop": 64}}))
    s = load_settings(path)
    assert s.train.lr == 1.0 and isinstance(s.train.lr, float) and s.train.crop == 64 and s.train.batch == 4
