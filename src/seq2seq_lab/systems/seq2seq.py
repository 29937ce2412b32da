"""Sequence-to-sequence with token targets: teacher-forced cross-entropy, greedy (or beam) evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassExactMatch

from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.models.char_lm import LMFusion
from seq2seq_lab.models.ctc_prefix import CTCPrefixScorer
from seq2seq_lab.models.search import greedy_choice, until_eos
from seq2seq_lab.models.seq2seq import Seq2Seq
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.systems.attention_stats import AttentionStats, attention_stats
from seq2seq_lab.systems.base import BaseSystem, check_vocabulary
from seq2seq_lab.systems.teacher_forcing import DRAWS, as_schedule


def trim_targets(batch: dict) -> dict:
    """``batch`` with ``targets (B, L)`` cut to its longest target, ``(B, max(target_lengths))``: the columns
    cut hold only PAD, which the loss ignores, so the loss and its gradients stay the same while teacher
    forcing decodes no step past the batch's longest line (a corpus of mostly 10-character lines read with
    ``data.max_length=40`` would decode 41 steps a batch). Validation and test keep every column: their
    searches run for ``L`` steps, and a batch's own longest label must not bound what they read."""
    lengths = batch.get("target_lengths")
    if lengths is None or not len(lengths) or int(lengths.max()) >= batch["targets"].size(1):
        return batch
    return batch | {"targets": batch["targets"][:, :int(lengths.max())]}


def align_predictions(tokens: torch.Tensor, length: int, eos_id: int, pad_id: int) -> torch.Tensor:
    """Predicted ``tokens (B, L')`` as ``(B, length)``: PAD after the first EOS, cut or PAD-filled to ``length``."""
    tokens = tokens.masked_fill(~until_eos(tokens, eos_id), pad_id)
    if tokens.size(1) >= length:
        return tokens[:, :length]
    return F.pad(tokens, (0, length - tokens.size(1)), value=pad_id)


EXPOSURE_METRICS = ("loss_free", "token_acc_tf", "token_acc_free")


class Seq2SeqSystem(BaseSystem):
    """Token targets ``(B, L)`` (chars, EOS, PAD). Training uses teacher forcing at
    ``model.teacher_force`` (or ``teacher_forcing``); validation and test log the
    teacher-forced loss and the whole-sequence accuracy ``acc`` of the decoded
    output (greedy, or beam search when ``beam_width > 1``).

    They also log the exposure-bias gap: the same encoding decoded teacher-forced
    (``loss``, ``token_acc_tf``) and free-running, each step fed the model's own
    previous output (``loss_free``, ``token_acc_free``), and at the epoch's end
    ``exposure_gap`` (``loss_free - loss``) and ``exposure_gap_acc``
    (``token_acc_tf - token_acc_free``). Token accuracies count every target
    token (characters and EOS), PAD excluded.

    Args:
        model: a :class:`~seq2seq_lab.models.Seq2Seq` in token mode.
        tokenizer: owns SOS/EOS/PAD; ``model.output_dim`` must equal its vocab size.
        teacher_forcing: training ratio: None keeps the model's ``teacher_force``; a number is
            constant; a mapping is a schedule over training steps (``kind``: constant, linear,
            exponential, inverse_sigmoid; ``ceiling``, ``floor``, ``steps``, ``k``; see
            :mod:`~seq2seq_lab.systems.teacher_forcing`). The current ratio is logged as
            ``train/teacher_forcing``.
        teacher_forcing_draw: ``batch`` (one draw per decoder step for the whole batch) or
            ``token`` (one per step and sample, as in the scheduled-sampling paper).
        beam_width: evaluation search width.
        label_smoothing: of the cross-entropy.
    """

    capabilities = frozenset({"decode"})  # token sequences

    def __init__(
        self,
        model: Seq2Seq,
        tokenizer: Tokenizer,
        teacher_forcing: float | dict | None = None,
        teacher_forcing_draw: str = "batch",
        beam_width: int = 1,
        label_smoothing: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_vocabulary(model, tokenizer)
        self.net = model
        self.tokenizer = tokenizer
        self.teacher_forcing = as_schedule(teacher_forcing)
        if teacher_forcing_draw not in DRAWS:
            raise ConfigError(f"system.teacher_forcing_draw={teacher_forcing_draw!r}: must be one of {', '.join(DRAWS)}")
        self.teacher_forcing_draw = teacher_forcing_draw
        self.beam_width = beam_width
        self.label_smoothing = label_smoothing
        self.exact_match = nn.ModuleDict(
            {
                s: MulticlassExactMatch(tokenizer.vocab_size, ignore_index=tokenizer.PAD)
                for s in ("val", "test")
            }
        )
        # attention entropy, monotonicity, coverage (none without attention)
        self.attention_stats = AttentionStats() if model.decoder.attention.name != "none" else None
        self.exposure = nn.ModuleDict(
            {s: nn.ModuleDict({k: MeanMetric() for k in EXPOSURE_METRICS}) for s in ("val", "test")}
        )

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None, max_length: int | None = None,
                outputs: dict | None = None):
        """Decoded tokens ``(B, L')``, scores ``(B,)`` and attention (greedy) or None (beam); read together
        with :meth:`other_views` of the inputs, where there are any. ``outputs``: ``{"encoded": ...}`` of these
        inputs where the caller has encoded them already (and whatever it computed from that), else None."""
        outputs = {"encoded": self.net.encode(inputs, input_lengths)} if outputs is None else outputs
        return self.net.search(*outputs["encoded"], self.tokenizer.EOS, max_length, self.beam_width, self.fusion(),
                               self.other_views(inputs, input_lengths), self.ctc_scorer(outputs))

    def read_as_exported(self) -> list[str]:
        """Read from now on as an exported graph reads (:mod:`seq2seq_lab.deploy.graphs`): greedily, each line
        alone. Returns the settings this turned off (e.g. ``["beam_width=5"]``), for the log."""
        off = [f"beam_width={self.beam_width}"] if self.beam_width > 1 else []
        self.beam_width = 1
        return off

    def fusion(self) -> LMFusion | None:
        """The language model that decoding fuses with the model's scores (none here)."""
        return None

    def ctc_scorer(self, outputs: dict) -> CTCPrefixScorer | None:
        """The CTC prefix scorer that decoding reads jointly with the attention, of ``outputs["encoded"]``
        ``(memory, mask, summary)`` and whatever else the loss computed from it (none here)."""
        return None

    def other_views(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None) -> list[tuple]:
        """Encodings ``(memory, mask, summary)`` of other views of the inputs, which decoding reads with them
        as an ensemble (none here)."""
        return []

    @property
    def teacher_forcing_ratio(self) -> float:
        """This step's ratio: the schedule's at the global step in training (no schedule: the
        model's ``teacher_force``), 1 otherwise."""
        if not self.training:
            return 1.0
        if self.teacher_forcing is None:
            return float(self.net.teacher_force)
        return self.teacher_forcing(self.global_step)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.log("train/teacher_forcing", self.teacher_forcing_ratio, on_step=True, on_epoch=False)
        return super().training_step(trim_targets(batch), batch_idx)

    def token_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``logits (B, L, V)`` against ``targets (B, L)``, PAD ignored."""
        return F.cross_entropy(
            logits.flatten(0, 1),
            targets.flatten(),
            ignore_index=self.tokenizer.PAD,
            label_smoothing=self.label_smoothing,
        )

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The loss and ``{"logits": (B, L, V), "attention": (B, L, T), "encoded": (memory, mask, summary)}``:
        validation decodes from the same encoding instead of encoding the batch again."""
        targets = batch["targets"]
        encoded = self.net.encode(batch["inputs"], batch.get("input_lengths"))
        logits, attention = self.net.decode(*encoded, targets, self.teacher_forcing_ratio,
                                            draw=self.teacher_forcing_draw)
        return self.token_loss(logits, targets), {"logits": logits, "attention": attention, "encoded": encoded}

    def free_running(self, batch: dict, outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, L, V)`` and attention ``(B, L, T)`` of the loss's encoding decoded on the model's own
        outputs for the target's ``L`` steps (greedy, without stopping at EOS); computed once per batch."""
        if "free" not in outputs:
            outputs["free"] = self.net.decode(*outputs["encoded"], batch["targets"], 0.0)
        return outputs["free"]

    def decode_batch(self, batch: dict, outputs: dict, more: Sequence = ()
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Tokens ``(B, L')``, scores and attention of the batch, searched from the loss's encoding: greedy
        is read off :meth:`free_running` (the same decode the exposure gap uses), beam search (and any fusion with a
        language model, :meth:`fusion`, ``more`` encodings of other views of the batch, or joint decoding with a CTC
        head, :meth:`ctc_scorer`) runs apart."""
        fusion, ctc = self.fusion(), self.ctc_scorer(outputs)
        if self.beam_width > 1 or fusion is not None or more or ctc is not None:
            return self.net.search(*outputs["encoded"], self.tokenizer.EOS, batch["targets"].size(1), self.beam_width,
                                   fusion, more, ctc)
        logits, attention = self.free_running(batch, outputs)
        return (*greedy_choice(logits, self.tokenizer.EOS), attention)

    def update_metrics(self, batch: dict, outputs: dict, stage: str) -> None:
        targets = batch["targets"]
        tokens, _, attention = self.decode_batch(batch, outputs)
        preds = align_predictions(tokens, targets.size(1), self.tokenizer.EOS, self.tokenizer.PAD)
        self.exact_match[stage].update(preds, targets)
        self.update_exposure(batch, outputs, stage)
        self.update_attention_stats(batch, outputs, attention, stage)

    def update_attention_stats(self, batch: dict, outputs: dict, attention: torch.Tensor | None, stage: str) -> None:
        """Entropy, monotonicity and coverage of the greedy decoding's ``attention (B, S, T)``
        over the target's steps (none for beam search)."""
        if self.attention_stats is None or attention is None:
            return
        steps = batch["targets"] != self.tokenizer.PAD  # (B, L)
        self.attention_stats.update(stage, attention_stats(attention, steps, outputs["encoded"][1]))

    def update_exposure(self, batch: dict, outputs: dict, stage: str) -> None:
        """Teacher-forced against free-running decoding of the loss's encoding (the exposure-bias gap)."""
        targets = batch["targets"]  # (B, L)
        valid = targets != self.tokenizer.PAD  # (B, L)
        free, _ = self.free_running(batch, outputs)  # (B, L, V): own outputs fed back
        tokens = valid.sum()
        metrics = self.exposure[stage]
        metrics["loss_free"].update(self.token_loss(free, targets))
        metrics["token_acc_tf"].update((outputs["logits"].argmax(-1) == targets)[valid].float().mean(), tokens)
        metrics["token_acc_free"].update((free.argmax(-1) == targets)[valid].float().mean(), tokens)

    def exposure_metrics(self, stage: str) -> dict:
        return dict(self.exposure[stage].items())

    def diagnostic_metrics(self, stage: str) -> dict:
        """The exposure-bias and attention metrics of a stage."""
        attention = self.attention_stats.metrics(stage) if self.attention_stats is not None else {}
        return {**self.exposure_metrics(stage), **attention}

    def stage_metrics(self, stage: str) -> dict:
        return {"acc": self.exact_match[stage], **self.diagnostic_metrics(stage)}

    def _log_exposure_gap(self, stage: str) -> None:
        metrics = self.exposure[stage]
        if not metrics["loss_free"].update_count:
            return
        self.log(f"{stage}/exposure_gap", metrics["loss_free"].compute() - self.losses[f"{stage}_loss"].compute(),
                 sync_dist=True)
        self.log(f"{stage}/exposure_gap_acc",
                 metrics["token_acc_tf"].compute() - metrics["token_acc_free"].compute(), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_exposure_gap("val")

    def on_test_epoch_end(self) -> None:
        self._log_exposure_gap("test")
