"""S1 -> S2 retrieval of held-out real BigEarthNet pairs through the exported artefacts (issue 26).

Pretrain Dual-SimCLR (``--method multimodal --modalities s2,s1``) on the 18 training pairs of
``ben_s1s2_real.npz``, export, ``eoreps embed`` the 18 test pairs through the exported encoders and
projection heads, and rank each S1 query's S2 twin among the 18 S2 patches (cosine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eoreps.evaluation.embed import EmbedConfig, run_embed
from eoreps.evaluation.embedding_store import EmbeddingFolder
from eoreps.evaluation.retrieval import cross_modal_ranks
from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

#: the settings of docs/ssl.md ("Cross-modal retrieval"): 90 steps, 13 s on 2 quiet cores (up to ~60 s busy)
# crop=0: whole 120 x 120 patches as measured (cnn-* now default to random 32 px crops on any source)
SETTINGS = dict(method="multimodal", modalities=["s2", "s1"], backbone="cnn-tiny", epochs=30, batch_size=6,
                knn=False, accelerator="cpu", seed=0, monitor_samples=16, checkpoint_every=1000, crop=0)


def test_held_out_s1_to_s2_retrieval_beats_chance_in_the_joint_space(
    shared_data: Path, tmp_path: Path
) -> None:
    """Measured with seed 0 (1 thread): joint space recall@1 0.167 (3 of 18; chance 1/18 = 0.056, so 3x),
    mean rank 5.3 (chance 9.5); backbone space of the two separate encoders recall@1 0.056, mean rank 9.8
    (chance). Seeds 1-4 gave joint recall@1 0.111, 0.222, 0.056, 0.111 and mean rank 7.1, 5.9, 6.0, 7.2:
    one of 18 hits is 0.056, so recall@1 is noisy while the mean rank stays well below chance. The test
    keeps seed 0 and asserts recall@1 >= 2x chance, mean rank <= 0.8x chance, and a backbone space that is
    not aligned (mean rank >= 0.85x chance)."""
    npz = shared_data / "bigearthnet" / "ben_s1s2_real.npz"
    run = tmp_path / "run"
    run_pretrain(PretrainConfig(data=str(npz), out=str(run), **SETTINGS))
    emb = tmp_path / "emb"
    run_embed(EmbedConfig(backbone=str(run), data=str(npz), out=str(emb), splits=["test"], thumbnails="off"))
    folder = EmbeddingFolder.open(emb)
    n = len(folder.split_rows("test"))
    assert n == 18 and folder.index["spaces"]["joint"] == {"s2": 128, "s1": 128}
    joint = cross_modal_ranks(folder.array("joint", "s1"), folder.array("joint", "s2"))
    backbone = cross_modal_ranks(folder.array("backbone", "s1"), folder.array("backbone", "s2"))
    chance_r1, chance_rank = 1 / n, (n + 1) / 2
    assert np.mean(joint <= 1) >= 2 * chance_r1, joint
    assert joint.mean() <= 0.8 * chance_rank, joint
    assert backbone.mean() >= 0.85 * chance_rank, backbone
