"""Supervised tasks: LightningModules, multi-task weighting, uncertainty, metrics, data, experiments.

Entry point: :func:`eoreps.tasks.fit.fit` with a :class:`eoreps.tasks.fit.FitConfig`.
"""
