"""Rendering speed of the realistic generator: ocr_zh_cpu's synth settings, N lines, 2 workers."""
import shutil, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import compose_config
from seq2seq_lab.data.synth.corpus import generate_corpus, spec_from_config
from omegaconf import OmegaConf, open_dict
n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
cfg = compose_config("train", ["experiment=ocr_zh_cpu"], Path("outputs/tools/render_speed"))
s = OmegaConf.to_container(cfg.synth, resolve=True)
s.update(num_train=n, num_val=0, num_test=0, num_test_heldout=0)
out = Path("outputs/tools/render_speed/corpus"); shutil.rmtree(out, ignore_errors=True)
t = time.perf_counter()
m = generate_corpus(spec_from_config(s), out, workers=2)
dt = time.perf_counter() - t
print(f"{n} lines in {dt:.1f} s with 2 workers: {n/dt:.0f} lines/s (manifest seconds {m['seconds']})")
