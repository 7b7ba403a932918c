"""BigEarthNet class nomenclatures: the 43 CORINE Land Cover labels of v1 and the 19-class set.

BigEarthNet v1 patches carry labels from 43 CORINE Land Cover (CLC 2018) level-3 classes, named in
each patch's ``*_labels_metadata.json``. The 19-class nomenclature (Sumbul et al., 2021, and the one
BigEarthNet v2 / reBEN ships directly) merges classes that are hard to tell apart from a 1.2 km patch
and drops 11 that are mostly invisible at 10 m (roads, ports, airports, mineral extraction, dump and
construction sites, green urban areas, sport facilities, bare rock, burnt areas, intertidal flats).

The merge table below is the published BigEarthNet-19 conversion (``label_indices.json`` of the
``bigearthnet-common`` package); a test checks every one of the 43 names is either mapped or listed
as dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from eoreps.errors import DataError

BEN43_CLASSES: tuple[str, ...] = (
    "Continuous urban fabric",
    "Discontinuous urban fabric",
    "Industrial or commercial units",
    "Road and rail networks and associated land",
    "Port areas",
    "Airports",
    "Mineral extraction sites",
    "Dump sites",
    "Construction sites",
    "Green urban areas",
    "Sport and leisure facilities",
    "Non-irrigated arable land",
    "Permanently irrigated land",
    "Rice fields",
    "Vineyards",
    "Fruit trees and berry plantations",
    "Olive groves",
    "Pastures",
    "Annual crops associated with permanent crops",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland",
    "Moors and heathland",
    "Sclerophyllous vegetation",
    "Transitional woodland/shrub",
    "Beaches, dunes, sands",
    "Bare rock",
    "Sparsely vegetated areas",
    "Burnt areas",
    "Inland marshes",
    "Peatbogs",
    "Salt marshes",
    "Salines",
    "Intertidal flats",
    "Water courses",
    "Water bodies",
    "Coastal lagoons",
    "Estuaries",
    "Sea and ocean",
)
"""The 43 BigEarthNet v1 (CLC level-3) class names, in the official index order."""

BEN19_CLASSES: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
"""The 19 BigEarthNet-19 class names (also the label vocabulary of BigEarthNet v2 / reBEN)."""

# 19-class index -> the 43-class indices merged into it (bigearthnet-common "label_conversion").
_CONVERSION: tuple[tuple[int, ...], ...] = (
    (0, 1),            # Urban fabric <- continuous + discontinuous urban fabric
    (2,),              # Industrial or commercial units
    (11, 12, 13),      # Arable land <- non-irrigated, permanently irrigated, rice fields
    (14, 15, 16, 18),  # Permanent crops <- vineyards, fruit trees, olive groves, annual+permanent crops
    (17,),             # Pastures
    (19,),             # Complex cultivation patterns
    (20,),             # Agriculture with natural vegetation
    (21,),             # Agro-forestry areas
    (22,),             # Broad-leaved forest
    (23,),             # Coniferous forest
    (24,),             # Mixed forest
    (25, 31),          # Natural grassland + sparsely vegetated areas
    (26, 27),          # Moors and heathland + sclerophyllous vegetation
    (28,),             # Transitional woodland/shrub
    (29,),             # Beaches, dunes, sands
    (33, 34),          # Inland wetlands <- inland marshes, peatbogs
    (35, 36),          # Coastal wetlands <- salt marshes, salines
    (38, 39),          # Inland waters <- water courses, water bodies
    (40, 41, 42),      # Marine waters <- coastal lagoons, estuaries, sea and ocean
)

BEN43_TO_19: dict[str, str | None] = {name: None for name in BEN43_CLASSES}
"""43-class name -> 19-class name, ``None`` for the 11 classes BigEarthNet-19 drops."""
for _j, _sources in enumerate(_CONVERSION):
    for _i in _sources:
        BEN43_TO_19[BEN43_CLASSES[_i]] = BEN19_CLASSES[_j]

DROPPED_43: tuple[str, ...] = tuple(n for n, m in BEN43_TO_19.items() if m is None)
"""The 11 v1 classes without a 19-class counterpart (labels silently dropped, as in BigEarthNet-19)."""

# Spelling variants seen in the wild (v2 metadata, older tools) -> canonical 19-class name.
_ALIASES_19 = {
    "Transitional woodland/shrub": "Transitional woodland, shrub",
}


def multihot19_from_43(labels: Iterable[str], source: str = "labels") -> np.ndarray:
    """Convert v1 (43-class) label names to a 19-class multi-hot vector.

    Args:
        labels: CLC level-3 names as in a v1 ``*_labels_metadata.json``.
        source: file or patch named in the error for an unknown label.

    Returns:
        ``(19,)`` float32 multi-hot vector (all zeros if every label was a dropped class).
    """
    out = np.zeros(len(BEN19_CLASSES), dtype=np.float32)
    for name in labels:
        if name not in BEN43_TO_19:
            raise DataError(
                f"{source}: unknown BigEarthNet-43 label {name!r}; expected a CORINE level-3 name"
            )
        target = BEN43_TO_19[name]
        if target is not None:
            out[BEN19_CLASSES.index(target)] = 1.0
    return out


def multihot19_from_19(labels: Iterable[str], source: str = "labels") -> np.ndarray:
    """Convert 19-class label names (BigEarthNet v2 / reBEN metadata) to a ``(19,)`` float32 multi-hot."""
    out = np.zeros(len(BEN19_CLASSES), dtype=np.float32)
    for name in labels:
        name = _ALIASES_19.get(str(name), str(name))
        if name not in BEN19_CLASSES:
            raise DataError(
                f"{source}: unknown BigEarthNet-19 label {name!r}; expected one of the 19 class names"
            )
        out[BEN19_CLASSES.index(name)] = 1.0
    return out
