"""Run by test_resume.py: a quick pretraining, slowed down per step so that it can be killed mid-epoch."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import lightning as L

from eoreps.ssl.pretrain import run_pretrain


class SlowDown(L.Callback):
    """Sleep after every step (leaves time to kill the run between two checkpoints)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: object) -> None:
        time.sleep(self.seconds)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from _pretrain_helpers import tiny_config

    data, out, resume, delay = sys.argv[1], sys.argv[2], sys.argv[3] == "1", float(sys.argv[4])
    cfg = tiny_config("simclr", Path(data), Path(out), epochs=2, max_samples=128, batch_size=16,
                      checkpoint_every=3, resume=resume, quick=False)
    result = run_pretrain(cfg, callbacks=[SlowDown(delay)] if delay > 0 else None)
    print(json.dumps({"steps": result.steps}))
