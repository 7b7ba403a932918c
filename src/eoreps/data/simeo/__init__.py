"""SimEO: eoreps' built-in **synthetic** Earth-observation dataset.

Deterministic from a seed; co-registered multimodal patches (S2, S1, DEM, auxiliary land cover,
weather, season, NO2 column) with ground truth for every downstream task, large scenes for spatial
sampling (Tile2Vec), and a power-plant multi-task set. All physical parameters live in
:class:`SimEOParams`; the model and the folder format are documented in ``docs/simeo.md``.
Every result obtained on SimEO must be reported as obtained on synthetic data.

Modules: ``params`` (the dataclass and constants), ``fields`` (random fields), ``world`` (terrain,
land cover, phenology, weather), ``sensors`` (S2, clouds, S1), ``targets`` (labels, NO2),
``generate`` (patches, scenes), ``plants`` (power plants), ``io`` (folder format).
"""

from eoreps.data.simeo.generate import PATCH_KEYS, generate_patches, generate_scenes
from eoreps.data.simeo.io import is_simeo_folder, load_simeo, write_simeo
from eoreps.data.simeo.params import (
    FUEL_TYPES,
    SIMEO_CLASSES,
    SIMEO_REGIONS,
    SIMEO_VERSION,
    SPLITS,
    SimEOParams,
)
from eoreps.data.simeo.plants import PLANT_KEYS, generate_power_plants

__all__ = [
    "FUEL_TYPES", "PATCH_KEYS", "PLANT_KEYS", "SIMEO_CLASSES", "SIMEO_REGIONS", "SIMEO_VERSION", "SPLITS",
    "SimEOParams", "generate_patches", "generate_power_plants", "generate_scenes", "is_simeo_folder",
    "load_simeo", "write_simeo",
]
