"""The options of ``eoreps data pack``, from which the command's options, ``--help`` and YAML keys are
generated (:mod:`eoreps.cli_config`). Torch-free: building the CLI imports this module."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eoreps.cli_config import opt
from eoreps.errors import ConfigError

if TYPE_CHECKING:
    from eoreps.data.pack import PackOptions


@dataclass
class PackConfig:
    """``data pack``: how a source is read and written as a streaming pack (``out``: shared option)."""

    workers: int = opt(0, help="Processes reading the source (torch DataLoader workers; 0 = this process).")
    splits: list[str] | None = opt(
        None,
        none="",
        help="Splits to pack, e.g. train,val,test (default: train,val,test "
        "when the source has them, else all).",
    )
    modalities: list[str] | None = opt(
        None, none="", help="Modalities to pack, e.g. s2,s1 (default: all the source has)."
    )
    torchgeo: str = opt("", help="A torchgeo dataset class (e.g. EuroSAT): SRC is then its root folder.")
    part_size: int = opt(2000, help="Samples per committed part (what a resumed pack redoes at most).")
    chunk_bytes: str = opt("64MB", help="LitData chunk size limit, e.g. 64MB.")
    resume: bool = opt(False, help="Continue an interrupted pack in --out.", flag="--resume")
    strict: bool = opt(
        False, help="Stop at the first corrupt source item instead of skipping it.", flag="--strict"
    )
    verify: bool = opt(
        False,
        help="Check the pack in --out (packing it first if needed): checksums, every chunk "
        "read, sample counts, random samples against the source.",
        flag="--verify",
    )
    verify_samples: int = opt(8, help="With --verify: random samples compared with the source (0 = none).")
    include_snow_cloud: bool = opt(
        False,
        help="reBEN: also pack the patches flagged for snow, cloud or shadow.",
        flag="--include-snow-cloud",
    )
    out: Path = Path("packed")
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"workers={self.workers}: must be >= 0 (0 = read in this process)")
        if self.part_size < 1:
            raise ConfigError(f"part_size={self.part_size}: must be >= 1")
        if self.verify_samples < 0:
            raise ConfigError(f"verify_samples={self.verify_samples}: must be >= 0")

    def pack_options(self, source: str, data_options: dict[str, Any] | None = None) -> PackOptions:
        """The library's :class:`~eoreps.data.pack.PackOptions` for ``source``."""
        from eoreps.data.pack import PackOptions

        kw = {**self.options, **(data_options or {}),
              **({"include_snow_cloud": True} if self.include_snow_cloud else {})}
        return PackOptions(source=source, out=Path(self.out), splits=tuple(self.splits or ()),
                           modalities=tuple(self.modalities or ()), torchgeo=self.torchgeo, options=kw,
                           workers=self.workers, part_size=self.part_size, chunk_bytes=self.chunk_bytes,
                           resume=self.resume, strict=self.strict, seed=self.seed)
