"""``eoreps backbone import``: published or one's own weights (local file) -> an eoreps backbone folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.commands.common import OutOpt, echo_kv

app = typer.Typer(help="Backbones from other libraries' weights (torchgeo, timm, own checkpoints).",
                  no_args_is_help=True)


@app.command("import")
def import_cmd(
    spec: Annotated[str, typer.Argument(help="torchgeo:<WeightsEnum>.<MEMBER>, timm:<model> or an eoreps "
                                             "backbone name (see docs/models.md).")],
    weights: Annotated[Path, typer.Option("--weights", help="Local weights file (.pth, .ckpt, "
                                                            ".safetensors).")],
    out: OutOpt = Path("backbones/imported"),
    key_map: Annotated[str, typer.Option("--key-map", help="Rewrite key prefixes, e.g. 'backbone.=' "
                                                           "(comma-separated OLD=NEW, or a YAML file).")]
    = "",
    modality: Annotated[str, typer.Option("--modality", help="Data modality the weights read (default: s2 "
                                                             "/ s1 from their bands).")] = "",
    bands: Annotated[str, typer.Option("--bands", help="Band names the weights expect, comma-separated "
                                                       "(timm / own checkpoints; torchgeo's are known).")]
    = "",
) -> None:
    """Load SPEC's architecture with local --weights and save it as an eoreps backbone folder (weights +
    card), which evaluate, study, embed and the zoo read like eoreps' own backbones."""
    from eoreps.models.external import import_backbone
    from eoreps.models.io import load_backbone

    band_list = [b.strip() for b in bands.split(",") if b.strip()] or None
    path = import_backbone(spec, weights, out, key_map=key_map or None, modality=modality or None,
                           bands=band_list)
    card = load_backbone(path).card
    ext = card.extra.get("external", {})
    echo_kv(f"imported {spec}", {
        "architecture": f"{card.backbone.name} ({card.backbone.in_chans} input channels, "
                        f"{card.num_params:,} parameters)",
        "bands": ", ".join(f"{m}: {' '.join(b)}" for m, b in (card.band_names or {}).items()) or "not given",
        "units": ext.get("units", "unknown"),
        "weights sha256": ext.get("weights_sha256", ""),
        "out": str(path.parent),
    })
