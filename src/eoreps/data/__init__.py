"""Data: modalities, the SimEO generator, real-data loaders, splits and statistics."""

from eoreps.data.modalities import MODALITIES, Modality, get_modality

__all__ = ["MODALITIES", "Modality", "get_modality"]
