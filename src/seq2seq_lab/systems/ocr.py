"""Text-line OCR with the attention decoder: :class:`Seq2SeqSystem` plus text metrics and ``transcribe``."""

from __future__ import annotations

import logging

import torch

from seq2seq_lab.data.ocr.pieces import (attended_spans, character_spans, check_piece_chars, cut_columns, cut_lines,
                                         join_readings)
from seq2seq_lab.data.ocr.views import line_view, line_views
from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models.char_lm import LMFusion
from seq2seq_lab.models.ctc import ctc_loss
from seq2seq_lab.models.ctc_prefix import CTCPrefixScorer
from seq2seq_lab.models.search import until_eos
from seq2seq_lab.systems.attention_stats import AttentionStats, ctc_agreement
from seq2seq_lab.systems.guided_attention import GuideSchedule, diagonal_guide_loss
from seq2seq_lab.systems.lm_text import char_lm_from_text
from seq2seq_lab.systems.seq2seq import Seq2SeqSystem, align_predictions
from seq2seq_lab.systems.text_metrics import decode_references, text_metrics

__all__ = ["OCRSystem", "check_lm_options"]

log = logging.getLogger(__name__)

LM_DEFAULTS = {"weight": 0.4, "relative": True, "order": 3, "discount": 0.75, "eps": 0.01, "ascii_twins": None,
               "twin_share": 0.0, "ascii_share": 0.0}


def check_lm_options(lm: dict | None) -> dict | None:
    """``system.lm`` with its defaults filled in, or None.

    Raises:
        ConfigError: naming the ``system.lm`` key that is missing, unknown or out of range.
    """
    if lm is None:
        return None
    options = {**LM_DEFAULTS, **dict(lm)}
    unknown = sorted(set(options) - set(LM_DEFAULTS) - {"text_file"})
    if unknown:
        raise ConfigError(f"system.lm.{unknown[0]}: unknown key; keys: text_file, {', '.join(LM_DEFAULTS)}")
    if not options.get("text_file"):
        raise ConfigError("system.lm.text_file: missing (builtin:news, builtin:reviews or a UTF-8 file)")
    for key in ("weight", "discount", "eps"):
        if isinstance(options[key], bool) or not isinstance(options[key], (int, float)):
            raise ConfigError(f"system.lm.{key} must be a number, got {options[key]!r}")
    if not options["weight"] >= 0:
        raise ConfigError(f"system.lm.weight must be >= 0, got {options['weight']}")
    if not isinstance(options["relative"], bool):
        raise ConfigError(f"system.lm.relative must be true or false, got {options['relative']!r}")
    if not (isinstance(options["order"], int) and options["order"] >= 1):
        raise ConfigError(f"system.lm.order must be an integer >= 1, got {options['order']}")
    if not 0 < options["discount"] < 1:
        raise ConfigError(f"system.lm.discount must be in (0, 1), got {options['discount']}")
    if not 0 < options["eps"] <= 1:
        raise ConfigError(f"system.lm.eps must be in (0, 1], got {options['eps']}")
    for key in ("twin_share", "ascii_share"):
        share = options[key] = 0.0 if options[key] is None else options[key]  # null: as synth's
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ConfigError(f"system.lm.{key} must be a number in [0, 1], got {share!r}")
    if options["ascii_twins"] is not None and not isinstance(options["ascii_twins"], str):
        raise ConfigError(f"system.lm.ascii_twins must be a string of characters such as （）, got {options['ascii_twins']!r}")
    return options


class OCRSystem(Seq2SeqSystem):
    """A :class:`Seq2SeqSystem` for images of text lines.

    Validation and test also log, on the decoded strings (greedy, or beam when
    ``beam_width > 1``): ``line_acc`` (exact lines), ``cer`` and ``ned`` (1 - NED);
    see :mod:`~seq2seq_lab.systems.text_metrics`. The monitor defaults to ``line_acc``.

    Args:
        lm: shallow fusion of a character n-gram language model in decoding (validation, test,
            predict): a mapping with ``text_file`` (a text source as the generator's:
            ``builtin:news``, ``builtin:reviews`` or a UTF-8 file), ``weight`` (of its
            log-probabilities, added to the model's in the beam search; 0 turns it off), and
            optionally ``relative`` (true: log-probabilities relative to the text's character
            frequencies), ``order`` (3), ``discount`` (0.75), ``eps`` (0.01), ``ascii_twins`` and
            ``twin_share`` (the generator's: runs of the text printing them as ASCII), ``ascii_share``
            (the generator's: pieces of the text given a run of ASCII text); see
            :mod:`~seq2seq_lab.models.char_lm`. It is counted from the text when first needed
            (seconds), and is no part of the checkpoint's weights. None: no fusion.
        ctc_weight: ``w`` of joint CTC-attention training (Kim et al., 2017): the
            loss is ``(1 - w) CE + w CTC``, the CTC over the model's ``ctc_head``
            on the encoder memory (blank: id 0, as :class:`CTCSystem`): a per-column
            signal for the encoder that does not wait for the attention to align.
            0: plain cross-entropy.
        ctc_decode_weight: ``w`` of joint CTC-attention decoding (Watanabe et al., 2017) in validation, test
            and predict: the beam ranks each next character by ``(1 - w)`` times the attention's
            log-probability plus ``w`` times the CTC head's prefix score's increment (plus the language
            model's term), so the per-column CTC reading vetoes an attention that has lost its place; see
            :mod:`~seq2seq_lab.models.ctc_prefix`. Needs ``model.ctc_head=true``, trained (``ctc_weight > 0``).
            In ``[0, 1)``; 0: the attention decoder alone.
        guide: a diagonal prior on the attention in training, added to the loss: a mapping with
            ``weight`` (at step 0), ``sigma`` (its width, a fraction of the line) and ``steps``
            (where its weight has fallen linearly to 0; 0: constant); see
            :mod:`~seq2seq_lab.systems.guided_attention`. Logged as ``train/guide_loss``. None: off.
        views: read each line at test and predict in these views too, as an ensemble: a list of
            mappings with any of ``right`` and ``down`` (pixels the line is moved) and ``scale`` (of its
            width); the beam search averages the next-token log-probabilities of the line as given and
            of each view (see :mod:`~seq2seq_lab.data.ocr.views`). Validation reads the line alone,
            since its time counts against a training budget. None: the line alone everywhere.
        piece_chars: read a line at test and predict in pieces of about this many characters where a first
            reading finds at least 1.5 times as many: cut midway between two of its characters, each piece read
            as a line of its own (with the views, the language model and joint decoding as set), the readings
            joined (see :mod:`~seq2seq_lab.data.ocr.pieces`). The first reading is the CTC head's best path
            where the model has one, else a greedy one, each character at its attention's peak column.
            Validation reads lines whole. None: lines read whole everywhere.
        others: as :class:`Seq2SeqSystem`.
    """

    capabilities = frozenset({"decode", "transcribe"})  # text-line images -> text

    def __init__(self, *args, ctc_weight: float = 0.0, ctc_decode_weight: float = 0.0, lm: dict | None = None,
                 guide: dict | None = None, views: list | None = None, piece_chars: int | None = None, **kwargs):
        kwargs.setdefault("monitor", "line_acc")
        super().__init__(*args, **kwargs)
        self.lm_options = check_lm_options(lm)
        self.views = line_views(views)
        if self.views:
            log.info("test and predict read each line in %d views, as given and %s (system.views; "
                     "null reads each line once)", 1 + len(self.views), ", ".join(map(str, self.views)))
        self.guide = GuideSchedule.from_config(guide)
        if self.guide is not None and self.net.decoder.attention.name == "none":
            raise ConfigError("system.guide needs a model with attention (model/attention is none)")
        self._fusion: LMFusion | None = None
        if not 0.0 <= ctc_weight < 1.0:
            raise ValueError(f"system.ctc_weight must be in [0, 1), got {ctc_weight}")
        if ctc_weight and getattr(self.net, "ctc_head", None) is None:
            raise ValueError(f"system.ctc_weight={ctc_weight} needs a model with a CTC head: set model.ctc_head=true")
        self.ctc_weight = ctc_weight
        if isinstance(ctc_decode_weight, bool) or not isinstance(ctc_decode_weight, (int, float)) \
                or not 0.0 <= ctc_decode_weight < 1.0:
            raise ConfigError(f"system.ctc_decode_weight must be a number in [0, 1), got {ctc_decode_weight!r}")
        if ctc_decode_weight and getattr(self.net, "ctc_head", None) is None:
            raise ConfigError(f"system.ctc_decode_weight={ctc_decode_weight} needs a model with a trained CTC head: "
                              "model.ctc_head=true and system.ctc_weight > 0")
        self.ctc_decode_weight = float(ctc_decode_weight)
        self.piece_chars = check_piece_chars(piece_chars)
        if piece_chars is not None and getattr(self.net, "ctc_head", None) is None \
                and self.net.decoder.attention.name == "none":
            raise ConfigError(f"system.piece_chars={piece_chars} cuts lines between the characters a CTC head or the "
                              "attention places: it needs model.ctc_head=true or a model with attention")
        self.text_metrics = text_metrics()
        if self.attention_stats is not None and self.net.ctc_head is not None:
            self.attention_stats = AttentionStats(ctc=True)  # also: does the attention look where CTC reads?

    def fusion(self) -> LMFusion | None:
        if self.lm_options is None or not self.lm_options["weight"]:
            return None
        if self._fusion is None:
            options = {k: v for k, v in self.lm_options.items() if k not in ("weight", "relative")}
            try:
                lm = char_lm_from_text(tokenizer=self.tokenizer, **options)
            except ConfigError as err:
                raise ConfigError(f"system.lm.{err}") from err
            self._fusion = LMFusion(lm, float(self.lm_options["weight"]), bool(self.lm_options["relative"]))
        return self._fusion

    def read_as_exported(self) -> list[str]:
        """As :meth:`Seq2SeqSystem.read_as_exported`; also without the language model, views, joint CTC decoding
        and pieces."""
        off = super().read_as_exported()
        lm = self.lm_options is not None and bool(self.lm_options["weight"])
        off += [name for name, on in (("lm", lm), ("views", bool(self.views)),
                                      (f"ctc_decode_weight={self.ctc_decode_weight:g}", bool(self.ctc_decode_weight)),
                                      (f"piece_chars={self.piece_chars}", self.piece_chars is not None)) if on]
        self.lm_options, self._fusion, self.views, self.ctc_decode_weight, self.piece_chars = None, None, [], 0.0, None
        return off

    def ctc_scorer(self, outputs: dict) -> CTCPrefixScorer | None:
        if not self.ctc_decode_weight:
            return None
        mask = outputs["encoded"][1]  # (B, T)
        return CTCPrefixScorer(self.ctc_log_probs(outputs), mask.sum(1), Tokenizer.SOS, self.ctc_decode_weight)

    def ctc_log_probs(self, outputs: dict) -> torch.Tensor:
        """The CTC head's ``(B, T, V)`` reading of ``outputs["encoded"]``'s memory, computed once: kept in
        ``outputs["ctc"]`` for the loss, joint decoding and the attention-CTC agreement alike."""
        if "ctc" not in outputs:
            outputs["ctc"] = self.net.ctc_head(outputs["encoded"][0])
        return outputs["ctc"]

    def read_in_pieces(self, images: torch.Tensor, input_lengths: torch.Tensor | None, outputs: dict,
                       max_length: int | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Tokens ``(B, L')`` and scores ``(B,)`` of ``images (B, C, H, W)`` (``input_lengths (B,)``, None: all
        ``W``) read in pieces (:attr:`piece_chars`), from ``outputs``: ``{"encoded": ...}`` of the lines whole,
        whose CTC reading (else greedy reading) places the cuts; None where no line is long enough to cut (or
        pieces are off)."""
        if self.piece_chars is None:
            return None
        if self.net.ctc_head is not None:
            spans = character_spans(self.ctc_log_probs(outputs), outputs["encoded"][1].sum(1), Tokenizer.SOS)
        else:
            tokens, _, attention = self.net.search(*outputs["encoded"], self.tokenizer.EOS, max_length)
            spans = attended_spans(tokens, attention, self.tokenizer.EOS)
        stride = self.net.encoder.column_stride
        cuts = [cut_columns(row, self.piece_chars, stride) for row in spans]
        if not any(cuts):
            return None
        if input_lengths is None:
            input_lengths = torch.full((images.size(0),), images.size(3), dtype=torch.long, device=images.device)
        pieces, widths, owner = cut_lines(images, input_lengths, cuts)
        tokens, scores, _ = super().forward(pieces, widths, max_length)
        return join_readings(tokens, scores, owner, images.size(0), self.tokenizer.EOS, self.tokenizer.PAD)

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None, max_length: int | None = None,
                outputs: dict | None = None):
        """As :meth:`Seq2SeqSystem.forward`; long lines read in pieces where :attr:`piece_chars` is set (their
        attention: None)."""
        if self.piece_chars is not None:
            outputs = {"encoded": self.net.encode(inputs, input_lengths)} if outputs is None else outputs
            read = self.read_in_pieces(inputs, input_lengths, outputs, max_length)
            if read is not None:
                return (*read, None)
        return super().forward(inputs, input_lengths, max_length, outputs)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        ce, outputs = super().compute_loss(batch)
        self.loss_parts = {}
        loss = ce
        mask = outputs["encoded"][1]  # (B, T)
        if self.ctc_weight:
            targets = batch["targets"]  # (B, L): chars, EOS, PAD
            ctc = ctc_loss(self.ctc_log_probs(outputs), mask.sum(1), targets, batch["target_lengths"] - 1, Tokenizer.SOS)
            self.loss_parts |= {"ce_loss": ce.detach(), "ctc_loss": ctc.detach()}
            loss = (1 - self.ctc_weight) * ce + self.ctc_weight * ctc
        weight = self.guide.weight_at(self.global_step) if self.guide is not None and self.training else 0.0
        if weight:
            guide = diagonal_guide_loss(outputs["attention"], mask, batch["target_lengths"] - 1, self.guide.sigma)
            self.loss_parts |= {"ce_loss": ce.detach(), "guide_loss": guide.detach()}
            loss = loss + weight * guide
        return loss, outputs

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if self.loss_parts:  # the terms (train/ce_loss, train/ctc_loss, train/guide_loss), and CE per step
            self.log_dict({f"train/{k}": v for k, v in self.loss_parts.items()}, on_step=False, on_epoch=True,
                          batch_size=batch["targets"].size(0))
            self.log("train/ce_loss_step", self.loss_parts["ce_loss"], on_step=True, on_epoch=False)
        return loss

    def other_views(self, images: torch.Tensor, input_lengths: torch.Tensor | None) -> list[tuple]:
        """Encodings ``(memory, mask, summary)`` of ``images (B, C, H, W)`` in each of :attr:`views` (the
        line as given is the caller's to encode); none without views."""
        return [self.net.encode(*line_view(images, input_lengths, view)) for view in self.views]

    def update_metrics(self, batch: dict, outputs: dict, stage: str) -> None:
        targets = batch["targets"]  # (B, L)
        read = None
        if stage == "test":  # validation reads each line whole, and once
            read = self.read_in_pieces(batch["inputs"], batch.get("input_lengths"), outputs, targets.size(1))
        if read is not None:
            tokens, attention = read[0], None
        else:
            more = self.other_views(batch["inputs"], batch.get("input_lengths")) if stage == "test" else ()
            tokens, _, attention = self.decode_batch(batch, outputs, more)
        preds = align_predictions(tokens, targets.size(1), self.tokenizer.EOS, self.tokenizer.PAD)  # (B, L)
        unk = targets == self.tokenizer.UNK  # (B, L): a reference UNK is wrong whatever the prediction
        self.exact_match[stage].update(preds.masked_fill(unk, self.tokenizer.PAD), targets)
        texts, refs = self.tokenizer.batch_decode(preds), decode_references(self.tokenizer, targets)
        for metric in self.text_metrics[stage].values():
            metric.update(texts, refs)
        if stage == "test":
            self.test_readings += zip(batch["texts"], texts)
        self.update_exposure(batch, outputs, stage)
        self.update_attention_stats(batch, outputs, attention, stage)
        if attention is not None and self.net.ctc_head is not None and self.attention_stats is not None:
            chars = until_eos(tokens, self.tokenizer.EOS) & (tokens != self.tokenizer.EOS)  # (B, S)
            self.attention_stats.update(stage, {"attn_ctc_agreement": ctc_agreement(attention, tokens, chars,
                                                                                    self.ctc_log_probs(outputs))})

    def stage_metrics(self, stage: str) -> dict:
        return {"acc": self.exact_match[stage], **self.text_metrics[stage], **self.diagnostic_metrics(stage)}

    @torch.no_grad()
    def transcribe(
        self, images: torch.Tensor, input_lengths: torch.Tensor | None = None
    ) -> tuple[list[str], torch.Tensor]:
        """Texts of ``images (B, C, H, W)`` (``input_lengths (B,)``: their widths before padding;
        None: all ``W``) and ``(B,)`` confidences: the geometric mean of the probabilities of the
        decoded tokens, EOS included (``exp`` of their mean log-probability)."""
        tokens, scores, _ = self(images, input_lengths)  # (B, L'), (B,)
        confidence = (scores.float() / until_eos(tokens, self.tokenizer.EOS).sum(1).clamp(min=1)).exp()
        return self.tokenizer.batch_decode(tokens), confidence
