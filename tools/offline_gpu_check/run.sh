#!/bin/bash
# One check of ocr_zh on an offline GPU machine (tools/offline_gpu_check/README.md): draw a corpus with the
# machine's CPUs, train the full-size model a few minutes (precision auto), read the real-text proxy (beam +
# views + LM, then plain), then a short 16-mixed + CTC run, read with joint CTC-attention decoding. Env: LOCAL=1 (this machine: no unpack or pip), OUT
# (results), NTRAIN, MAXTIME, TRAINER, W (synth workers), NW (loader workers), VALB, TESTLIST, FP16STEPS.
set -u
T0=$(date +%s); t() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
NTRAIN=${NTRAIN:-200000}; MAXTIME=${MAXTIME:-00:00:03:45}; TRAINER=${TRAINER:-gpu}; W=${W:-16}; NW=${NW:-12}
if [ -z "${LOCAL:-}" ]; then
  tar xJf .gpu/bundle.tar.xz -C /tmp || exit 2
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:/tmp/gpu/py:$PWD/src; PY=python3; G=/tmp/gpu
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)'
else PY=.venv/bin/python; G=$PWD/.gpu/stage/gpu; fi
export PYTHONUNBUFFERED=1
t imports; $PY -c "import torch, lightning, hydra, albumentations, lmdb, seq2seq_lab.train; print(torch.__version__, lightning.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), torch.cuda.is_available() and torch.cuda.is_bf16_supported())" || exit 4
# synth.fonts from the subsets' styles.txt: [[$F/a,$F/b],[$F/c],...]
FONTS="[$(sed "s#[^,]*#$G/fonts/&#g; s#.*#[&]#" $G/fonts/styles.txt | paste -sd,)]"
COMMON=(experiment=ocr_zh trainer=$TRAINER synth.out_dir=/tmp/corpus synth.num_train=$NTRAIN synth.num_test_heldout=0
        "synth.heldout_fonts=[]" synth.workers=$W "synth.fonts=$FONTS" data.num_workers=$NW data.test=$G/rt280/${TESTLIST:-test.txt})
t train; timeout ${TTRAIN:-420} $PY -m seq2seq_lab.train "${COMMON[@]}" task_name=gpu_zh logger=csv trainer.max_epochs=100 trainer.max_time=$MAXTIME +trainer.limit_val_batches=${VALB:-1.0} \
   hydra.run.dir=/tmp/run > /tmp/train.log 2>&1; echo "rc=$?"
grep -v "it/s\]" /tmp/train.log | grep -vE "^│|^┃|^┏|^┡|^└|appears twice" | tail -45; cp /tmp/train.log $OUT/train.log
C=$(ls /tmp/run/checkpoints/last.ckpt 2>/dev/null)
if [ -n "$C" ]; then
  t eval-plain; timeout 60 $PY -m seq2seq_lab.eval ckpt_path=$C +data.test=$G/rt280/${TESTLIST:-test.txt} +data.num_workers=4 '+system.lm=null' '+system.views=null' hydra.run.dir=/tmp/eval_plain > /tmp/eval_plain.log 2>&1; echo "rc=$?"
  grep -E "cer|acc|CER|ned" /tmp/eval_plain.log | tail -15; cp /tmp/eval_plain.log $OUT/
fi
find /tmp/run -name metrics.json -o -name "metrics.csv" | head -3 | while read f; do cp "$f" $OUT/$(basename $(dirname $f))_$(basename $f); done
t fp16-ctc; timeout ${TFP16:-70} $PY -m seq2seq_lab.train "${COMMON[@]}" task_name=gpu_fp16 logger=csv trainer.precision=16-mixed model.ctc_head=true system.ctc_weight=0.2 \
   +trainer.max_steps=${FP16STEPS:-400} trainer.max_time=null +trainer.limit_val_batches=4 test=false hydra.run.dir=/tmp/run16 > /tmp/fp16.log 2>&1; echo "rc=$?"
grep -v "it/s\]" /tmp/fp16.log | grep -iE "precision|loss|nan|error|val/" | tail -20; cp /tmp/fp16.log $OUT/
find /tmp/run16 -name "metrics.csv" | head -1 | while read f; do cp "$f" $OUT/fp16_metrics.csv; done
C16=$(ls /tmp/run16/checkpoints/last.ckpt 2>/dev/null)
if [ -n "$C16" ]; then  # joint CTC-attention decoding on the GPU: the CTC head's prefix scores in the beam
  t eval-joint; timeout ${TJOINT:-60} $PY -m seq2seq_lab.eval ckpt_path=$C16 +data.test=$G/rt280/test64.txt +data.num_workers=4 \
     +system.ctc_decode_weight=0.5 hydra.run.dir=/tmp/eval_joint > /tmp/eval_joint.log 2>&1; echo "rc=$?"
  grep -E "cer|line_acc|Error" /tmp/eval_joint.log | tail -6; cp /tmp/eval_joint.log $OUT/
fi
t done
