"""Self-supervised pretraining: SimCLR, multimodal Dual-SimCLR, MoCo v2, BYOL, DINO, MAE, Tile2Vec.

* :mod:`eoreps.ssl.losses` -- NT-Xent (uni- and cross-modal, negatives gathered across processes),
  Tile2Vec triplet loss, MAE reconstruction loss;
* :mod:`eoreps.ssl.methods` -- one LightningModule per method (``get_method(name)``);
* :mod:`eoreps.ssl.data` -- in-memory pretraining data, batched normalisation and augmentation;
* :mod:`eoreps.ssl.monitor` -- collapse monitoring and online kNN accuracy;
* :mod:`eoreps.ssl.pretrain` -- the runner behind ``eoreps pretrain`` (checkpoints, resume, export);
* :mod:`eoreps.ssl.export` -- exported backbones and how to load them (incl. late fusion).

See ``docs/ssl.md``.
"""

from __future__ import annotations
