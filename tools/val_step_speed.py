"""Validation step cost on ocr_zh_cpu's model: encoding twice (before) vs once (now), synthetic batches of 64."""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import torch
from helpers import compose_config
from seq2seq_lab.assemble import build_datamodule, build_system
from seq2seq_lab.bench import synthetic_batches
torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
cfg = compose_config("train", ["experiment=ocr_zh_cpu"], Path("outputs/tools/val_step_speed"))
dm = build_datamodule(cfg); system = build_system(cfg, dm).eval()
batches = synthetic_batches(dm, 64, 12, 0)
EOS = system.tokenizer.EOS
def before(b):  # the loss's forward, then generate() encodes the batch again
    loss, out = system.compute_loss(b)
    system.net.generate(b["inputs"], b["input_lengths"], EOS, b["targets"].size(1), 1)
def now(b):  # the loss's forward, then search from its encoding
    loss, out = system.compute_loss(b)
    system.net.search(*out["encoded"], EOS, b["targets"].size(1), 1)
def now_all(b):  # now, with the exposure-gap decode and attention statistics (the whole update_metrics)
    loss, out = system.compute_loss(b)
    system.update_metrics(b, out, "val")
res = {}
with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
    for name, fn in (("before", before), ("now", now), ("now_all", now_all)) * 2:
        fn(batches[0])
        t = time.perf_counter()
        for b in batches[1:]:
            fn(b)
        res.setdefault(name, []).append((time.perf_counter() - t) / (len(batches) - 1))
for k, v in res.items():
    print(k, f"{min(v)*1000:.1f} ms/batch of 64 (bf16 autocast, {torch.get_num_threads()} threads)")
print("speed-up of encoding once:", f"{min(res['before'])/min(res['now']):.2f}x")
