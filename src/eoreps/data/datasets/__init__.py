"""Datasets: one file per dataset, dict samples, ``plot(sample)``."""
