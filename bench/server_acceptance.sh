#!/usr/bin/env bash
# Server-side acceptance run (issue 4): manifest + score + select + pack + inspect on a real
# reference folder of ~69,000 PNGs, with a real teacher, on the CPU.
#
#   bench/server_acceptance.sh [WORKDIR]        (default /tmp/plada_accept)
#
# Needs: pip install -e '.[torch,demo]'; apt-get install dataset-fashion-mnist openclipart-png.
# Every step can be rerun: prepare skips the PNGs it wrote, score resumes its shards.
set -euo pipefail
WORK=${1:-/tmp/plada_accept}
WORKERS=${WORKERS:-auto}   # auto = 0 on 2 cores: workers would steal the forward pass's cores
BATCH=${BATCH:-128}
TEACHER="timm:tf_efficientnet_lite0:$WORK/teacher.pth"
mkdir -p "$WORK"

# 1. the reference folder and a teacher fitted on the target task
[ -f "$WORK/teacher.pth" ] || python -m pladacodec_bench.score_throughput prepare "$WORK"

# 2. reference identity
pladacodec manifest "$WORK/reference" -o "$WORK/reference.manifest"

# 3. scoring, with a progress bar (images/s); resumable
time pladacodec score --teacher "$TEACHER" --reference "$WORK/reference" --out "$WORK/scores" \
    --img-size 32 --crop-pct 1.0 --batch-size "$BATCH" --workers "$WORKERS"

# 4. data loading is not the bottleneck: forward alone vs end-to-end on the same batches
for w in 0 2; do
    python -m pladacodec_bench.score_throughput throughput --teacher "$TEACHER" --reference "$WORK/reference" \
        --img-size 32 --crop-pct 1.0 --batch-size "$BATCH" --batches 12 --workers "$w"
done

# 5. selection: straight to .plada, and via a selection file + pack
pladacodec select "$WORK/scores" --keep 1% --safety-net 0.2 --alpha -0.2 \
    --reference "$WORK/reference" -o "$WORK/task-1pct.plada"
pladacodec select "$WORK/scores" --budget 10KB --safety-net 0.2 --alpha 0.5 -o "$WORK/task-10KB.plada"
pladacodec select "$WORK/scores" --keep 5% -o "$WORK/selection-5pct.npz"
pladacodec pack "$WORK/selection-5pct.npz" --reference-manifest "$WORK/reference.manifest" \
    --classes "$WORK/classes.txt" -o "$WORK/task-5pct.plada"

# 6. the tasks carry the reference fingerprint
cat "$WORK/reference.manifest.sha256"
for t in task-1pct task-10KB task-5pct; do
    pladacodec inspect "$WORK/$t.plada"
done
