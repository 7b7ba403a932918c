"""Evaluation protocols and the label-efficiency study.

* :mod:`eoreps.evaluation.data`: train / val / test splits in memory, label-fraction subsets;
* :mod:`eoreps.evaluation.encoders`: method specs (pretrained, random, supervised) -> encoders;
* :mod:`eoreps.evaluation.features`: frozen features, extracted once and cached;
* :mod:`eoreps.evaluation.protocols`: linear, kNN, fine-tuning, adapters, segmentation decoders;
* :mod:`eoreps.evaluation.study`: the resumable grid (``eoreps study label-efficiency``);
* :mod:`eoreps.evaluation.tables`: published-format tables, the plot and the report;
* :mod:`eoreps.evaluation.headline`: the headline study behind ``eoreps demo``.
"""
