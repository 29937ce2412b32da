"""Start-up checks of a run's config: every problem is reported at once, before any data is read.

Each rule names a dotted key, a test and what is allowed; keys a config does
not have are not checked (a data module without ``batch_size`` has no rule).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from seq2seq_lab.data.charset import DUPLICATE_POLICIES, CharsetError, charset_file
from seq2seq_lab.data.mnist.module import MNISTDataModule
from seq2seq_lab.data.ocr.module import BAD_SAMPLE_POLICIES, UNKNOWN_CHAR_POLICIES
from seq2seq_lab.data.ocr.sources import LABEL_FORMATS
from seq2seq_lab.data.toy import TASKS
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models.arguments import RULES as MODEL_RULES
from seq2seq_lab.models.arguments import positive_int, rate, unit_interval
from seq2seq_lab.models.attention import ATTENTIONS
from seq2seq_lab.systems.teacher_forcing import DRAWS, KINDS, as_schedule

_MISSING = object()


def _get(cfg: DictConfig, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node or OmegaConf.is_missing(node, part):
            return _MISSING
        node = node[part]
    return node


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def optional_positive_int(v: Any) -> bool:
    return v is None or positive_int(v)


def optional_unit_interval(v: Any) -> bool:
    return v is None or unit_interval(v)


def positive_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def attention(v: Any) -> bool:
    if isinstance(v, str):
        return v in ATTENTIONS
    if isinstance(v, DictConfig) and "_target_" in v:
        known = {f"{c.__module__}.{c.__qualname__}" for c in ATTENTIONS.values()}
        known |= {f"seq2seq_lab.models.{c.__qualname__}" for c in ATTENTIONS.values()}
        return v["_target_"] in known
    return False


def teacher_forcing(v: Any) -> bool:
    if isinstance(v, DictConfig):
        try:
            as_schedule(OmegaConf.to_container(v, resolve=True))
        except (ConfigError, TypeError):
            return False
        return True
    return optional_unit_interval(v)


RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    *((f"model.{name}", ok, allowed) for name, (ok, allowed) in MODEL_RULES.items()),  # the builders' own rules
    ("model.attention", attention, f"one of {', '.join(ATTENTIONS)} (model/attention=NAME)"),
    ("model.positions", lambda v: isinstance(v, bool) or v in ("auto", "keys", "concat"), "true, false, keys, concat or auto"),
    ("data.batch_size", positive_int, "an integer >= 1"),
    ("data.eval_batch_size", optional_positive_int, "null or an integer >= 1"),
    ("data.num_workers", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("data.on_duplicate_char", lambda v: v in DUPLICATE_POLICIES, f"one of {', '.join(DUPLICATE_POLICIES)}"),
    ("data.label_format", lambda v: v in LABEL_FORMATS, f"one of {', '.join(LABEL_FORMATS)}"),
    ("data.on_bad_sample", lambda v: v in BAD_SAMPLE_POLICIES, f"one of {', '.join(BAD_SAMPLE_POLICIES)}"),
    ("data.on_unknown_char", lambda v: v is None or v in UNKNOWN_CHAR_POLICIES,
     f"null or one of {', '.join(UNKNOWN_CHAR_POLICIES)}"),
    ("data.view", lambda v: v in MNISTDataModule.VIEWS, f"one of {', '.join(MNISTDataModule.VIEWS)}"),
    ("data.task", lambda v: v in TASKS, f"one of {', '.join(TASKS)}"),
    ("data.val_fraction", lambda v: isinstance(v, (int, float)) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    ("data.val_size", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("system.teacher_forcing", teacher_forcing, f"null, a number in [0, 1] or a schedule (kind: {', '.join(KINDS)}; "
     "0 <= floor <= ceiling <= 1; linear: steps >= 1; exponential: 0 < k < 1; inverse_sigmoid: k >= 1)"),
    ("system.teacher_forcing_draw", lambda v: v in DRAWS, f"one of {', '.join(DRAWS)}"),
    ("system.beam_width", positive_int, "an integer >= 1"),
    ("system.ctc_weight", rate, "a number in [0, 1)"),
    ("system.optimizer.lr", positive_number, "a number > 0"),
    ("trainer.max_epochs", lambda v: v == -1 or positive_int(v), "an integer >= 1 (or -1)"),
    ("callbacks.ema.decay", rate, "a number in [0, 1)"),
    ("callbacks.ema.start_step", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
]


def _path_problems(cfg: DictConfig) -> list[str]:
    """Files and directories the data config names must exist (a downloadable data set may be absent,
    and so may the files of the corpus that ``data.synth`` will generate into its ``out_dir``)."""
    problems = []
    out_dir = _get(cfg, "data.synth.out_dir")
    generated = Path(out_dir).resolve() if isinstance(out_dir, str) else None
    data_dir = _get(cfg, "data.data_dir")
    if isinstance(data_dir, str) and not Path(data_dir).is_dir() and _get(cfg, "data.download") is not True:
        problems.append(f"data.data_dir={data_dir!r}: no such directory (set S2S_DATA_DIR or data.data_dir)")
    for key in ("data.charset", "data.train", "data.val", "data.test"):
        value = _get(cfg, key)
        paths = list(value) if isinstance(value, (list, ListConfig)) else [value]
        for p in paths:
            if not isinstance(p, str):
                continue
            if key == "data.charset" and p.startswith("builtin:"):
                try:
                    charset_file(p)
                except CharsetError as err:
                    problems.append(f"{key}={p!r}: {err}")
            elif not Path(p).exists() and not (generated and generated in Path(p).resolve().parents):
                problems.append(f"{key}={p!r}: no such file or directory")
    return problems


def validate_config(cfg: DictConfig, check_paths: bool = True) -> None:
    """Raise :class:`ConfigError` listing every invalid key of ``cfg`` with what it allows."""
    problems = []
    for key, ok, allowed in RULES:
        value = _get(cfg, key)
        if value is _MISSING:
            continue
        if not ok(value):
            shown = value["_target_"] if isinstance(value, DictConfig) and "_target_" in value else value
            if isinstance(shown, (DictConfig, ListConfig)):
                shown = OmegaConf.to_container(shown)
            problems.append(f"{key}={shown!r}: must be {allowed}")
    if check_paths:
        problems += _path_problems(cfg)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
