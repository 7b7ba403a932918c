"""Architecture and backbone names: ``-``/``_`` spellings are interchangeable; a name from the other
registry (zoo ``cnn_s`` vs backbone ``cnn-small``, different networks) gets a one-line hint."""

from __future__ import annotations

import pytest

from eoreps.errors import ConfigError
from eoreps.models.registry import canonical_backbone_name, create_backbone
from eoreps.zoo.architectures import canonical_arch_name, make_arch


@pytest.mark.parametrize("spelling", ["cnn_s", "cnn-s", "CNN-S"])
def test_zoo_arch_accepts_both_spellings(spelling):
    arch = make_arch(spelling)
    assert arch.name == "cnn_s" and arch.num_params == 2464


def test_zoo_arch_multi_underscore():
    assert canonical_arch_name("cnn-s-rgb") == "cnn_s_rgb"


@pytest.mark.parametrize("spelling", ["cnn-small", "cnn_small", "CNN_Small"])
def test_backbone_accepts_both_spellings(spelling):
    assert canonical_backbone_name(spelling) == "cnn-small"
    bb = create_backbone(spelling, in_chans=3)
    assert bb.spec["name"] == "cnn-small"


def test_backbone_name_given_to_zoo_points_at_backbones():
    with pytest.raises(ConfigError) as e:
        make_arch("cnn-small")
    msg = str(e.value)
    assert "\n" not in msg and "unknown architecture 'cnn-small'" in msg and "is a backbone" in msg


def test_zoo_name_given_as_backbone_points_at_zoo():
    with pytest.raises(ConfigError) as e:
        create_backbone("cnn_s", in_chans=3)
    msg = str(e.value)
    assert "\n" not in msg and "model-zoo architecture" in msg and "cnn-small" in msg


def test_unrelated_unknown_name_has_no_cross_hint():
    with pytest.raises(ConfigError) as e:
        create_backbone("resnet9000", in_chans=3)
    assert "model-zoo" not in str(e.value)
