"""A study's ``backbones:`` list (eoreps.evaluation.backbone_list): entries turned into method specs."""

from __future__ import annotations

from eoreps.evaluation.backbone_list import backbone_methods, default_name


def test_registered_name_at_file_is_own_weights_not_a_path() -> None:
    """``cnn-small@own.ckpt`` is one's own checkpoint of the registered cnn-small, like ``timm:x@FILE``."""
    own, path, tm = backbone_methods(["cnn-small@runs/own.ckpt", "runs/x@y/backbone", "timm:resnet18@r.pth"])
    assert (own.name, own.backbone, own.weights) == ("cnn-small", "cnn-small", "runs/own.ckpt")
    assert own.kind == "pretrained"
    assert (path.backbone, path.weights) == ("runs/x@y/backbone", None)  # not a registered name: a path
    assert (tm.name, tm.backbone, tm.weights) == ("timm-resnet18", "timm:resnet18", "r.pth")
    assert default_name("cnn_small@a.pth") == "cnn_small"
