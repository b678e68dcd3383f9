"""Run under torchrun by tests/test_teacher.py: score a folder into a scores directory.

    python -m torch.distributed.run --standalone --nproc-per-node 2 \
        tests/_torchrun_score_worker.py REFERENCE_DIR SCORES_DIR SHARD_SIZE BATCH_SIZE
"""

import sys
from pathlib import Path

import torch

from pladacodec import teacher
from pladacodec.reference import Reference


def main() -> None:
    reference_dir, scores_dir, shard_size, batch_size = sys.argv[1:5]
    torch.set_num_threads(1)
    rank, world = teacher.init_distributed("cpu")
    assert world == 2, world
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import _tiny_teacher

    t = teacher.load_teacher(f"{here / '_tiny_teacher.py'}:make", transform_overrides=_tiny_teacher.TRANSFORM)
    ref = Reference.from_dir(reference_dir)
    result = teacher.score(
        t.model, teacher.ImageListDataset(ref, t.transform), out_dir=scores_dir,
        shard_size=int(shard_size), batch_size=int(batch_size), reference_fingerprint=ref.fingerprint,
        progress=False,
    )
    print(f"rank {rank}: scored {result.stats.images} images, total {len(result.energy)}", flush=True)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
