"""In-memory pretraining data: whole batches per fetch, Tile2Vec triplets from scenes."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from eoreps.ssl.data import BatchDataset, PretrainData, TripletDataset, collate_batch


def test_batch_dataset_serves_whole_batches() -> None:
    data = PretrainData(
        {"s2": torch.randn(10, 12, 8, 8), "s1": torch.randn(10, 2, 8, 8)}, labels=torch.arange(10)
    )
    loader = DataLoader(
        BatchDataset(data), batch_size=4, shuffle=False, drop_last=True, collate_fn=collate_batch
    )
    batches = list(loader)
    assert len(batches) == 2
    b = batches[1]
    assert b["s2"].shape == (4, 12, 8, 8) and b["s1"].shape == (4, 2, 8, 8)
    torch.testing.assert_close(b["s2"], data.images["s2"][4:8])
    assert b["label"].tolist() == [4, 5, 6, 7]


def test_stats_ignore_nan() -> None:
    x = torch.randn(6, 2, 4, 4)
    x[0, 0] = float("nan")
    st = PretrainData({"s1": x}).stats()
    finite = x[:, 0][torch.isfinite(x[:, 0])]
    assert abs(st.mean["s1"][0] - finite.mean().item()) < 1e-5


def test_triplets_neighbors_are_close_and_distant_from_other_scenes() -> None:
    # scene k is filled with k * 10000 + row * 100 + col in channel 0, so tiles reveal where they came from
    n, size, tile, r = 3, 40, 8, 4
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    scenes = torch.stack([(k * 10000 + ys * 100 + xs).float() for k in range(n)])[:, None]
    ds = TripletDataset(PretrainData({"dem": scenes}), tile=tile, neighborhood=r, seed=0)
    b = ds.__getitems__(list(range(30)))
    a, nb, d = (b[k]["dem"][:, 0] for k in ("anchor", "neighbor", "distant"))
    assert a.shape == (30, tile, tile)
    scene = lambda t: (t[:, 0, 0] // 10000).long()  # noqa: E731
    pos = lambda t: ((t[:, 0, 0] % 10000) // 100, t[:, 0, 0] % 100)  # noqa: E731
    assert (scene(a) == torch.arange(30) % n).all()
    assert (scene(nb) == scene(a)).all() and (scene(d) != scene(a)).all()
    (ya, xa), (yn, xn) = pos(a), pos(nb)
    assert ((ya - yn).abs() <= r).all() and ((xa - xn).abs() <= r).all()
    # a tile is a contiguous window: right neighbour pixel = +1
    assert (a[:, :, 1:] - a[:, :, :-1] == 1).all()
    ds.epoch = 1
    assert not torch.equal(ds.__getitems__(list(range(30)))["anchor"]["dem"], b["anchor"]["dem"])
