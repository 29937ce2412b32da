"""OCR models: the CRNN encoder, the attention and CTC models over it, text metrics, tiny overfits, predict."""

from __future__ import annotations

import functools

import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_config
from ocr_fakes import write_text_lines
from seq2seq_lab.models import CRNNCTC, CRNNAttention, CRNNEncoder, ctc_greedy
from seq2seq_lab.models.attention import ATTENTIONS, PositionAttention
from seq2seq_lab.models.crnn import MaxPool2x2, _BiRNN
from seq2seq_lab.models.search import beam, greedy
from seq2seq_lab.eval import evaluate
from seq2seq_lab.predict import predict
from seq2seq_lab.systems.text_metrics import LineAccuracy, NormalizedEditSimilarity, edit_distance, text_metrics
from seq2seq_lab.train import train

SLIM = dict(width_mult=0.25, rnn_hidden=32)


pytestmark = pytest.mark.usefixtures("one_thread")


# --- encoder and models --------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, dim, columns", [({}, 256, 71), (SLIM, 32, 71), ({**SLIM, "column_stride": 8}, 32, 36)])
def test_crnn_gives_71_columns_for_280_pixels_or_36_at_stride_8(kwargs, dim, columns):
    encoder = CRNNEncoder(**kwargs)
    memory, mask, summary = encoder(torch.rand(2, 3, 32, 280) * 2 - 1)
    assert memory.shape == (2, columns, dim) and summary.shape == (2, dim) and mask.shape == (2, columns)
    assert mask.all() and encoder.columns(280) == columns and encoder.output_dim == dim
    with pytest.raises(ValueError, match="column_stride"):
        CRNNEncoder(column_stride=2)


def test_conv_channels_set_each_layers_width_outright():
    late = (8, 16, 32, 32, 128, 128, 128)
    encoder = CRNNEncoder(channels=1, width_mult=0.125, rnn_hidden=32, conv_channels=late)  # conv_channels wins
    convs = [m for m in encoder.cnn if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == list(late) and encoder.conv_channels == list(late)
    assert encoder.rnns[0].rnn.input_size == 128  # the BiLSTM reads the last layer's channels
    memory, mask, _ = encoder(torch.rand(2, 1, 32, 120), torch.tensor([120, 60]))
    assert memory.shape == (2, 31, 32) and mask.sum(1).tolist() == [31, 16]
    assert [c.out_channels for c in CRNNEncoder(width_mult=0.125).cnn if isinstance(c, torch.nn.Conv2d)] == [
        8, 16, 32, 32, 64, 64, 64]  # null: width_mult's
    for bad in [(8, 16, 32), (8, 16, 32, 32, 128, 128, 0), (8, 16, 32, 32, 128, 128, 1.5), "8,16"]:
        with pytest.raises(ValueError, match="conv_channels must be null or 7 integers"):
            CRNNEncoder(conv_channels=bad)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("width", [97, 100, 61])
def test_each_row_of_a_padded_batch_reads_as_if_alone(stride, width, channels_last):
    """A row's valid feature columns in a wider batch equal those of the row alone, cropped to its width:
    in eval mode, and in training mode where BatchNorm takes its statistics over the valid columns only
    (a batch of one row and its copy padded with noise give the same statistics)."""
    torch.manual_seed(0)
    encoder = CRNNEncoder(channels=1, **{**SLIM, "conv_channels": (8, 16, 16, 16, 32, 32, 32)}, batch_norm="all",
                          column_stride=stride, channels_last=channels_last)
    line = torch.rand(1, 1, 32, width)
    batch = torch.cat([torch.cat([line, torch.rand(1, 1, 32, 300 - width) * 5], 3), torch.rand(1, 1, 32, 300)])
    widths = torch.tensor([width, 300])
    n = encoder.columns(width)
    for training in (False, True):
        encoder.train(training)
        with torch.set_grad_enabled(training):
            alone = encoder.features(line)  # (1, n, C')
            if training:  # the same statistics from the row twice, once padded with noise
                twice = torch.cat([batch[:1], batch[:1]])
                padded = encoder.features(twice, torch.tensor([width, width]))[:1]
            else:
                padded = encoder.features(batch, widths)[:1]
        assert padded.shape[1] == encoder.columns(300)
        # 3e-5: fp32 rounding of statistics summed in another order (E[x^2] - mean^2 against BatchNorm's own) over 7 layers
        assert torch.allclose(padded[:, :n], alone, atol=3e-5), (training, (padded[:, :n] - alone).abs().max())
        assert padded[:, n:].abs().max() < 1e-6  # zero past the valid columns
    # rows that fill the batch run the stack as it is
    with torch.no_grad():
        assert torch.equal(encoder.features(batch[1:], widths[1:]), encoder.features(batch[1:]))


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_padded_row_trains_as_if_alone(channels_last):
    """The conv stack's weight gradients from a row padded with noise (twice, so BatchNorm's statistics are
    the row's own) equal those of the row alone: nothing flows from the padding's columns."""
    torch.manual_seed(0)
    encoder = CRNNEncoder(channels=1, **{**SLIM, "conv_channels": (8, 16, 16, 16, 32, 32, 32)}, batch_norm="all",
                          channels_last=channels_last).train()
    line, width = torch.rand(1, 1, 32, 97), 97
    twice = torch.cat([line, torch.rand(1, 1, 32, 203) * 5], 3).expand(2, -1, -1, -1)
    weights = torch.randn(encoder.columns(width), 32)  # (T', C'): a loss that weighs every valid feature

    def gradients(images, widths=None):
        encoder.zero_grad()
        features = encoder.features(images, widths)[:, : encoder.columns(width)]  # (B, T', C')
        (features * weights).sum().backward()
        return [p.grad.clone() for p in encoder.cnn.parameters()]

    alone = gradients(torch.cat([line, line]))
    padded = gradients(twice, torch.tensor([width, width]))
    for want, got in zip(alone, padded, strict=True):  # within fp32 rounding of sums taken in another order
        assert (got - want).norm() <= 1e-5 * want.norm(), (got - want).norm() / want.norm()


@pytest.mark.parametrize("channels_last", [False, True])
def test_rows_of_other_widths_train_as_with_whole_masks(channels_last, monkeypatch):
    """The eager stack (masks from the narrowest row on, a ReLU masking its own output, poolings without
    masks) gives the outputs and gradients of one that multiplies every ReLU's and pooling's output by
    its whole mask (as under graph capture), on rows of other widths."""
    from seq2seq_lab.models import masked_conv

    torch.manual_seed(0)
    encoder = CRNNEncoder(channels=1, **{**SLIM, "conv_channels": (8, 16, 16, 16, 32, 32, 32)}, batch_norm="all",
                          channels_last=channels_last).train()
    images, widths = torch.rand(3, 1, 32, 300), torch.tensor([97, 300, 150])
    weights = torch.randn(encoder.columns(300), 32)  # (T', C')

    def run():
        encoder.zero_grad()
        features = encoder.features(images, widths)  # (B, T', C')
        (features * weights).sum().backward()
        return features.detach(), [p.grad.clone() for p in encoder.cnn.parameters()]

    features, grads = run()
    monkeypatch.setattr(masked_conv, "_capturing_graph", lambda: True)
    want_features, want_grads = run()
    assert torch.allclose(features, want_features, atol=1e-5)
    for want, got in zip(want_grads, grads, strict=True):
        assert (got - want).norm() <= 1e-5 * want.norm(), (got - want).norm() / want.norm()


def test_masked_batch_norm_keeps_running_statistics_of_the_valid_columns():
    from seq2seq_lab.models.masked_conv import column_mask, masked_batch_norm

    torch.manual_seed(0)
    norm, plain = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        for module in (norm, plain):
            module.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
            module.bias.copy_(torch.tensor([0.1, -0.3, 0.7]))
    x = torch.randn(2, 3, 4, 10)
    mask = column_mask(torch.tensor([6, 10]), 10, x)
    padded = (x + (1 - mask) * 100).requires_grad_()  # the padding's values count for nothing
    out = masked_batch_norm(norm, padded, mask)
    valid = torch.cat([x[0, :, :, :6].reshape(3, -1), x[1].reshape(3, -1)], 1).requires_grad_()  # (3, 64)
    want = plain(valid.T.reshape(64, 3, 1, 1)).reshape(64, 3).T  # (3, 64)

    def valid_columns(maps):
        return torch.cat([maps[0, :, :, :6].reshape(3, -1), maps[1].reshape(3, -1)], 1)

    assert torch.allclose(valid_columns(out), want, atol=1e-5)
    assert torch.allclose(norm.running_mean, plain.running_mean) and torch.allclose(norm.running_var, plain.running_var)
    assert norm.num_batches_tracked.item() == 1
    # gradients as BatchNorm's over the valid columns alone (the padding's gradient zero, as the mask after ReLU leaves it)
    grad = torch.randn(2, 3, 4, 10) * mask
    out.backward(grad)
    want.backward(valid_columns(grad))
    assert torch.allclose(valid_columns(padded.grad), valid.grad, atol=1e-5)
    assert padded.grad[0, :, :, 6:].abs().max() == 0
    assert torch.allclose(norm.weight.grad, plain.weight.grad, atol=1e-4)
    assert torch.allclose(norm.bias.grad, plain.bias.grad, atol=1e-4)


@pytest.mark.parametrize("start", [0, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_masked_batch_norm_gradients_on_every_column(affine, start):
    """Exact also where the padding's outputs get a gradient (they depend on the valid columns' statistics)."""
    from seq2seq_lab.models.masked_conv import column_mask, masked_batch_norm

    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(4, affine=affine, track_running_stats=False).double()
    x = torch.randn(3, 4, 2, 9, dtype=torch.double, requires_grad=True)
    mask = column_mask(torch.tensor([5, 9, 2]), 9, x)
    inputs = (x, norm.weight, norm.bias) if affine else (x,)
    assert torch.autograd.gradcheck(lambda x, *_: masked_batch_norm(norm, x, mask, start), inputs)


def test_crnn_masks_columns_beyond_the_content_width_and_takes_other_sizes():
    encoder = CRNNEncoder(channels=1, height=48, **SLIM).eval()
    memory, mask, summary = encoder(torch.rand(3, 1, 48, 160), torch.tensor([160, 40, 1]))
    assert memory.shape == (3, 41, 32)
    assert mask.sum(1).tolist() == [41, 11, 1]
    assert torch.allclose(summary[1], memory[1, :11].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 16"):
        CRNNEncoder(height=40)


def test_batch_norm_after_the_reference_layers_or_every_conv():
    def normed(encoder):  # indices of the convs that a BatchNorm follows
        layers = list(encoder.cnn)
        convs = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Conv2d)]
        return [k for k, i in enumerate(convs) if isinstance(layers[i + 1], torch.nn.BatchNorm2d)]

    assert normed(CRNNEncoder(**SLIM)) == [2, 4, 6]
    every = CRNNEncoder(**SLIM, batch_norm="all")
    assert normed(every) == list(range(7))
    assert all(m.bias is None for m in every.cnn if isinstance(m, torch.nn.Conv2d))  # BN brings the bias
    with pytest.raises(ValueError, match="batch_norm must be one of"):
        CRNNEncoder(batch_norm="some")


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    plain = CRNNEncoder(**SLIM).eval()
    fast = CRNNEncoder(**SLIM, channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    assert fast.cnn[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 280)
    assert torch.allclose(plain(x)[0], fast(x)[0], atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_a_narrow_first_block_stays_contiguous_under_channels_last(train):
    """8 channels first (ocr_zh_cpu's fp32 stack): its first block runs contiguous, the rest channels_last,
    with the outputs and gradients of the plain stack."""
    torch.manual_seed(0)
    narrow = dict(conv_channels=[8, 16, 16, 16, 32, 32, 32], rnn_hidden=16, batch_norm="all")
    plain = CRNNEncoder(**narrow).train(train)
    fast = CRNNEncoder(**narrow, channels_last=True).train(train)
    fast.load_state_dict(plain.state_dict())
    assert fast.contiguous_head == 4 and CRNNEncoder(**SLIM, channels_last=True).contiguous_head == 0  # 16 wide: none
    assert fast.cnn[0].weight.is_contiguous() and not fast.cnn[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.cnn[4].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(3, 3, 32, 120)
    widths = torch.tensor([120, 90, 61])
    out_plain, out_fast = plain(x, widths)[0], fast(x, widths)[0]
    assert torch.allclose(out_plain, out_fast, atol=1e-5)
    with torch.no_grad():  # inference runs channels_last throughout
        assert torch.allclose(plain(x, widths)[0], fast(x, widths)[0], atol=1e-5)
    if train:
        out_plain.square().sum().backward()
        out_fast.square().sum().backward()
        assert torch.allclose(plain.cnn[0].weight.grad, fast.cnn[0].weight.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("stride_w", "pad_w", "width"), [(2, 0, 71), (2, 0, 70), (1, 1, 71), (1, 1, 2), (2, 1, 9)])
def test_inference_max_pool_matches_max_pool2d(channels_last, stride_w, pad_w, width):
    x = torch.randn(2, 5, 33, width)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    pool = MaxPool2x2(stride_w, pad_w)
    with torch.no_grad():
        fast = pool(x)
    assert torch.equal(fast, torch.nn.functional.max_pool2d(x, 2, (2, stride_w), (0, pad_w)))
    assert fast.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.equal(pool(x.requires_grad_()), fast)  # the autograd path


def test_reference_size_parameter_counts():
    """The reference design with the 5,990-character Chinese charset (V = 5990 + SOS, EOS, PAD, UNK)."""
    model = CRNNAttention(output_length=11, output_dim=5994)
    assert sum(p.numel() for p in model.encoder.parameters()) == 8_443_520
    assert sum(p.numel() for p in model.parameters()) == 12_193_841  # the reference: 12.08M
    assert isinstance(model.decoder.attention, PositionAttention) and model.decoder.attention.max_positions == 71
    assert sum(p.numel() for p in CRNNCTC(output_dim=5994).parameters()) == 8_443_520 + 257 * 5994


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
def test_attention_decoder_over_crnn(attention):
    model = CRNNAttention(output_length=5, output_dim=9, width=128, hidden_dim=24, embed_dim=8,
                          attention=attention, **SLIM)
    images, targets = torch.rand(2, 3, 32, 128), torch.randint(2, 7, (2, 5))
    logits, weights = model(images, targets=targets)
    assert logits.shape == (2, 5, 9) and weights.shape == (2, 5, 33)
    logits.sum().backward()
    tokens, scores, _ = model.eval().generate(images, None, eos_id=1)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 5 and scores.shape == (2,)


def test_position_attention_slots_come_from_the_columns():
    factory = functools.partial(PositionAttention, max_positions=None)  # as conf/model/attention/position.yaml
    model = CRNNAttention(output_length=3, output_dim=6, width=160, attention=factory, **SLIM)
    assert model.decoder.attention.max_positions == 41
    with pytest.raises(ValueError, match="input_length"):
        CRNNAttention(output_length=3, output_dim=6, width=400, input_length=71, **SLIM)


def test_beam_width_one_equals_greedy_on_the_ocr_model():
    torch.manual_seed(0)
    model = CRNNAttention(output_length=6, output_dim=12, width=96, hidden_dim=32, embed_dim=16, **SLIM).eval()
    with torch.no_grad():
        memory, mask, summary = model.encode(torch.rand(3, 3, 32, 96))
        g_tokens, g_scores, _ = greedy(model.decoder, memory, mask, summary, 6, eos_id=1)
        b_tokens, b_scores = beam(model.decoder, memory, mask, summary, 6, eos_id=1, beam_width=1)
    n = g_tokens.size(1)
    assert torch.equal(g_tokens, b_tokens[:, :n]) and (b_tokens[:, n:] == 1).all()
    assert torch.allclose(g_scores, b_scores, atol=1e-5)


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    # blank = 0, a = 2, b = 3: "a a - a b" -> "a a b"; "- b b -" -> "b"; lengths cut the second row
    path = torch.tensor([[2, 2, 0, 2, 3], [0, 3, 3, 0, 2]])
    log_probs = torch.full((2, 5, 4), -10.0).scatter(2, path.unsqueeze(2), 0.0)
    rows, scores = ctc_greedy(log_probs, torch.tensor([5, 4]), blank=0)
    assert rows == [[2, 2, 3], [3]] and scores.tolist() == [0.0, 0.0]
    assert ctc_greedy(log_probs, None, blank=0)[0][1] == [3, 2]


def test_ctc_model_shapes():
    model = CRNNCTC(output_dim=10, channels=1, width=120, **SLIM)
    log_probs, mask = model(torch.rand(2, 1, 32, 120))
    assert log_probs.shape == (2, 31, 10) and mask.all()
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 31), atol=1e-5)


# --- metrics -------------------------------------------------------------------------------------
def test_joint_ctc_attention_loss_mixes_the_two_terms():
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.models.ctc import ctc_loss
    from seq2seq_lab.systems import OCRSystem

    tokenizer = Tokenizer("abcdef")
    torch.manual_seed(0)
    model = CRNNAttention(4, tokenizer.vocab_size, channels=1, width=64, hidden_dim=16, embed_dim=8,
                          attention="mlp", ctc_head=True, **SLIM)
    system = OCRSystem(model, tokenizer, ctc_weight=0.25, optimizer=functools.partial(torch.optim.Adam)).eval()
    targets = torch.tensor([[2, 3, 1, tokenizer.PAD], [4, 5, 6, 1]])
    batch = {"inputs": torch.rand(2, 1, 32, 64), "targets": targets, "target_lengths": torch.tensor([3, 4])}
    loss, outputs = system.compute_loss(batch)
    logits = outputs["logits"]

    memory, mask, _ = model.encode(batch["inputs"])
    ce = system.token_loss(model(batch["inputs"], targets=targets, teacher_forcing=1.0)[0], targets)
    ctc = ctc_loss(model.ctc_head(memory), mask.sum(1), targets, torch.tensor([2, 3]), blank=Tokenizer.SOS)
    assert ctc > 0 and torch.allclose(loss, 0.75 * ce + 0.25 * ctc)
    assert torch.allclose(system.loss_parts["ctc_loss"], ctc) and logits.shape == (2, 4, tokenizer.vocab_size)
    loss.backward()
    assert model.ctc_head.linear.weight.grad.abs().sum() > 0  # the head is trained through the mix

    plain = CRNNAttention(4, tokenizer.vocab_size, channels=1, width=64, **SLIM)
    with pytest.raises(ValueError, match="model.ctc_head=true"):
        OCRSystem(plain, tokenizer, ctc_weight=0.3, optimizer=torch.optim.Adam)
    with pytest.raises(ValueError, match=r"ctc_weight must be in \[0, 1\)"):
        OCRSystem(model, tokenizer, ctc_weight=1.0, optimizer=torch.optim.Adam)


def test_text_metrics_on_known_strings():
    preds, refs = ["abc", "abd", "", "xyzw"], ["abc", "abc", "ab", "xyz"]
    assert [edit_distance(p, r) for p, r in zip(preds, refs)] == [0, 1, 2, 1]
    metrics = text_metrics()["val"]
    for m in metrics.values():
        m.update(preds, refs)
    assert metrics["line_acc"].compute().item() == pytest.approx(0.25)
    assert metrics["cer"].compute().item() == pytest.approx(4 / 11)  # 4 edits over 11 reference chars
    assert metrics["ned"].compute().item() == pytest.approx(1 - (0 + 1 / 3 + 1 + 1 / 4) / 4)
    ned, acc = NormalizedEditSimilarity(), LineAccuracy()
    ned.update([""], [""])
    acc.update([""], [""])
    assert ned.compute().item() == 1.0 and acc.compute().item() == 1.0


# --- tiny corpus: overfit, then predict ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """8 images of 3-character labels over a 5-character charset; val and test are the same images."""
    root = write_text_lines(tmp_path_factory.mktemp("tiny"), "abcde", 3, {"train": 8}, size=(64, 32))
    for split in ("val", "test"):
        (root / f"{split}.txt").write_text((root / "train.txt").read_text())
    return root


def _overfit(tiny_corpus, tmp_path, experiment: str, epochs: int, val_every: int, extra: list[str]) -> dict:
    """Train on the 8 images (one batch per epoch), validate every ``val_every`` epochs, test the best."""
    overrides = [
        f"experiment={experiment}", f"data.train={tiny_corpus}/train.txt", f"data.val={tiny_corpus}/val.txt",
        f"data.test={tiny_corpus}/test.txt", f"data.charset={tiny_corpus}/charset.txt", "data.max_length=3",
        "data.width=64", "data.batch_size=8", "data.num_workers=0", "logger=csv", "callbacks.progress_bar=null",
        "callbacks.model_summary=null", "callbacks.lr_monitor=null", f"trainer.max_epochs={epochs}",
        f"trainer.check_val_every_n_epoch={val_every}", "model.width_mult=0.25", "model.rnn_hidden=64",
        "system.optimizer.lr=0.003", "threads=1", *extra,
    ]
    return train(compose_config("train", overrides, tmp_path))


def test_attention_model_overfits_a_tiny_corpus_and_predict_reads_it(tiny_corpus, tmp_path, capsys):
    extra = ["model.hidden_dim=64", "model.embed_dim=16", "model.input_length=17", "model.teacher_force=1.0"]
    metrics = _overfit(tiny_corpus, tmp_path / "run", "ocr_crnn_attention", 100, 20, extra)
    assert metrics["test/line_acc"] == 1.0 and metrics["test/cer"] == 0.0, metrics

    ckpt = next((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))
    capsys.readouterr()
    rows = predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={tiny_corpus}/test.txt"],
                                  tmp_path / "predict"))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "\t" in ln]
    assert len(lines) == len(rows) == 8
    labels = dict(line.split() for line in (tiny_corpus / "test.txt").read_text().splitlines())
    for line in lines:
        path, text, confidence = line.split("\t")
        assert text == labels[str(path).removeprefix(f"{tiny_corpus}/")] and 0 < float(confidence) <= 1
    assert (tmp_path / "predict" / "predictions.tsv").read_text().count("\n") == 9  # header + 8

    bf16 = predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={tiny_corpus}/images",
                                              "precision=bf16-mixed", "batch_size=3"], tmp_path / "bf16"))
    assert [(p, t) for p, t, _ in bf16] == [(p, t) for p, t, _ in sorted(rows)]  # a directory is read sorted

    int8 = predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={tiny_corpus}/test.txt", "quantize=int8",
                                              "precision=bf16-true", "calibration_batches=1"], tmp_path / "int8"))
    assert [(p, t) for p, t, _ in int8] == [(p, t) for p, t, _ in rows]
    quantized = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "quantize=int8", "trainer.precision=bf16-true",
                                                 "+data.num_workers=0"], tmp_path / "eval"))
    assert quantized["test/line_acc"] == 1.0 and quantized["quantize"] == "int8", quantized

    # the checkpoint travels: moved elsewhere, its corpus and charset gone, it still reads and evaluates
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["run_config"]["data"].update({k: f"/gone/{k}.txt" for k in ("train", "val", "test", "charset")})
    torch.save(checkpoint, moved)
    travelled = predict(compose_config("predict", [f"ckpt_path={moved}", f"inputs={tiny_corpus}/test.txt"],
                                       tmp_path / "moved"))
    assert [(p, t) for p, t, _ in travelled] == [(p, t) for p, t, _ in rows]
    elsewhere = evaluate(compose_config("eval", [f"ckpt_path={moved}", f"+data.test={tiny_corpus}/test.txt",
                                                 "+data.num_workers=0", "breakdown=false"], tmp_path / "eval2"))
    assert elsewhere["test/line_acc"] == 1.0

    # predict keeps going past unreadable images, writes rows as it goes, and resumes
    images = tmp_path / "mixed"
    images.mkdir()
    for i, line in enumerate((tiny_corpus / "test.txt").read_text().splitlines()):
        (images / f"ok_{i}.png").write_bytes((tiny_corpus / line.split()[0]).read_bytes())
    for i in range(3):
        (images / f"bad_{i}.png").write_bytes(b"not an image")
    run = tmp_path / "mixed_run"
    mixed = predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={images}", "batch_size=4"], run))
    table = (run / "predictions.tsv").read_text().splitlines()
    assert len(mixed) == len(table) - 1 == 11
    assert sum(1 for row in table[1:] if row.split("\t")[3]) == 3  # the error column of the bad ones
    skipped = predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={images}", "on_bad_image=skip"],
                                     tmp_path / "skip"))
    assert len(skipped) == 8
    (run / "predictions.tsv").write_text("\n".join(table[:6]) + "\n" + table[6][:5])  # killed mid-row
    resumed = predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={images}", "resume=true"], run))
    assert len(resumed) == 11 - 5
    again = (run / "predictions.tsv").read_text().splitlines()
    paths = [row.split("\t")[0] for row in again[1:] if "\t" in row]
    assert sorted(set(paths)) == sorted(str(p) for p in images.iterdir()) and len(paths) == 11


def test_ctc_model_overfits_a_tiny_corpus(tiny_corpus, tmp_path):
    # a list of train files: the data module's saved hyperparameters must still load with weights_only
    extra = [f"data.train=[{tiny_corpus}/train.txt]"]
    metrics = _overfit(tiny_corpus, tmp_path / "run", "ocr_crnn_ctc", 180, 30, extra)
    assert metrics["test/line_acc"] == 1.0 and metrics["test/ned"] == 1.0, metrics


# --- variable widths -----------------------------------------------------------------------------
def _random_system(kind: str, width: int):
    """A randomly initialised OCR system (eval mode) over grayscale lines up to ``width`` pixels;
    ``kind`` an attention (``+positions``: with column encodings on the memory; ``+keys``: on the
    attention's keys only; ``+concat``: appended to the memory) or ``ctc``, then ``@8`` for a
    column per 8 pixels."""
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.systems import CTCSystem, OCRSystem

    tokenizer = Tokenizer("abcdefgh")
    kind, _, stride = kind.partition("@")
    slim = {**SLIM, "column_stride": int(stride or 4)}
    if kind == "ctc":
        return CTCSystem(CRNNCTC(tokenizer.vocab_size, channels=1, width=width, **slim), tokenizer,
                         optimizer=torch.optim.Adam).eval()
    attention, _, positions = kind.partition("+")
    model = CRNNAttention(8, tokenizer.vocab_size, channels=1, width=width, hidden_dim=32, embed_dim=8,
                          attention=attention, positions={"": False, "positions": True, "keys": "keys", "concat": "concat"}[positions],
                          **slim)
    if attention == "location":  # its location term starts at zero: make it count
        torch.nn.init.normal_(model.decoder.attention.location_proj.weight, std=0.5)
    return OCRSystem(model, tokenizer, optimizer=torch.optim.Adam).eval()


@pytest.mark.parametrize("kind", ["position", "mlp", "mlp+positions", "mlp+keys", "mlp+concat", "ctc", "mlp+concat@8",
                                  "position@8", "ctc@8", "location"])
def test_a_prediction_does_not_depend_on_the_padding_of_its_batch(kind):
    from seq2seq_lab.data.ocr.widths import pad_batch

    torch.manual_seed(0)
    system = _random_system(kind, width=400)
    line, wide = torch.rand(1, 32, 97) * 2 - 1, torch.rand(1, 32, 400) * 2 - 1
    alone, alone_lengths = pad_batch([line], 400)  # (1, 1, 32, 100)
    mixed, mixed_lengths = pad_batch([line, wide], 400)  # (2, 1, 32, 400): 303 columns of padding
    assert alone.shape[-1] == 100 and mixed.shape[-1] == 400
    with torch.no_grad():
        first, scores_alone, _ = system(alone, alone_lengths)
        second, scores_mixed, _ = system(mixed, mixed_lengths)
        texts_alone, conf_alone = system.transcribe(alone, alone_lengths)
        texts_mixed, conf_mixed = system.transcribe(mixed, mixed_lengths)
        n = system.net.encoder.columns(97)  # 25 valid columns, 13 at stride 8
        leaked = system.net.encoder(mixed)[0][0, :n] - system.net.encoder(alone)[0][0, :n]
    assert texts_alone[0] == texts_mixed[0]
    assert abs(scores_alone[0].item() - scores_mixed[0].item()) < 1e-5
    assert abs(conf_alone[0].item() - conf_mixed[0].item()) < 1e-5
    if not kind.startswith("ctc"):  # the same tokens up to the shorter decode (the batch decodes until both rows end)
        steps = min(first.size(1), second.size(1))
        assert torch.equal(first[0, :steps], second[0, :steps])
    assert leaked.abs().max() > 1e-3  # without the widths the padding reaches the line's columns


def test_column_encodings_depend_on_the_column_alone():
    from seq2seq_lab.models.positions import sinusoid_positions

    short, long = sinusoid_positions(25, 16), sinusoid_positions(100, 16)
    assert short.shape == (25, 16) and torch.equal(short, long[:25])
    assert torch.equal(long[0, 1::2], torch.ones(8)) and torch.equal(long[0, 0::2], torch.zeros(8))
    distances = torch.cdist(long, long) + torch.eye(100) * 1e3
    assert distances.min() > 0.1  # every column has its own code
    assert sinusoid_positions(5, 7).shape == (5, 7)

    torch.manual_seed(0)
    plain = _random_system("mlp", width=120).net.encoder
    torch.manual_seed(0)
    placed = _random_system("mlp+positions", width=120).net.encoder
    images = torch.rand(2, 1, 32, 120)
    with torch.no_grad():
        added = placed(images)[0] - plain(images)[0]  # the same weights: only the encodings differ
    assert torch.allclose(added, sinusoid_positions(31, added.size(2)).expand_as(added), atol=1e-5)


def test_concatenated_encodings_are_features_of_their_own():
    """``positions="concat"``: the memory is the plain encoder's features, then the encodings."""
    from seq2seq_lab.models.positions import CONCAT_DIM, sinusoid_positions

    torch.manual_seed(0)
    plain = _random_system("mlp", width=120).net.encoder
    torch.manual_seed(0)
    system = _random_system("mlp+concat", width=120)
    placed = system.net.encoder
    assert placed.output_dim == plain.output_dim + CONCAT_DIM
    assert system.net.decoder.attention.context_dim == placed.output_dim
    images = torch.rand(2, 1, 32, 120)
    with torch.no_grad():
        memory, _, summary = placed(images)
        features = plain(images)[0]
    assert memory.shape == (2, 31, plain.output_dim + CONCAT_DIM)
    assert torch.allclose(memory[..., : plain.output_dim], features, atol=1e-6)
    assert torch.equal(memory[..., plain.output_dim :], sinusoid_positions(31, CONCAT_DIM).expand(2, -1, -1))
    assert summary.shape == (2, placed.output_dim)


@pytest.mark.parametrize("attention", ["mlp", "general"])
def test_key_encodings_steer_the_attention_but_stay_out_of_the_context(attention):
    """``positions="keys"``: the encoder's memory is untouched, the attention scores ``memory + P``,
    and the context is a weighted sum of the memory alone. On a memory whose columns are all alike,
    the weights still differ by column while the context is that column exactly, so the decoder
    (same weights) answers as the one without encodings, in teacher-forced, greedy and beam decoding."""
    from seq2seq_lab.models.search import beam

    torch.manual_seed(0)
    plain = _random_system(attention, width=120).net
    torch.manual_seed(0)
    keyed = _random_system(f"{attention}+keys", width=120).net
    images = torch.rand(2, 1, 32, 120)
    decoder = keyed.decoder
    with torch.no_grad():
        assert torch.equal(keyed.encoder(images)[0], plain.encoder(images)[0])
        k = keyed.encoder.output_dim
        memory = torch.randn(2, 1, k).expand(2, 31, k)  # (B, T, K): every column alike
        mask, summary = torch.ones(2, 31, dtype=torch.bool), torch.randn(2, k)
        state = decoder.initial_state(summary)
        query = state.top
        keys = decoder.keys(memory)
        context, weights = decoder.attention(query, keys, mask, decoder.attention.precompute(keys), values=memory)
        _, flat = plain.decoder.attention(query, memory, mask)
        targets = torch.randint(4, 12, (2, 5))
        forced, forced_weights = decoder(memory, mask, summary, targets)
        forced_plain, _ = plain.decoder(memory, mask, summary, targets)
        free, _ = decoder(memory, mask, summary, max_length=5)
        free_plain, _ = plain.decoder(memory, mask, summary, max_length=5)
        beamed = beam(decoder, memory, mask, summary, max_length=5, eos_id=3, beam_width=3)[0]
        beamed_plain = beam(plain.decoder, memory, mask, summary, max_length=5, eos_id=3, beam_width=3)[0]
    assert weights.std(dim=1).min() > 1e-4 and flat.std(dim=1).max() < 1e-6  # the encodings set the weights
    assert forced_weights.std(dim=2).min() > 1e-4
    assert torch.allclose(forced, forced_plain, atol=1e-5) and torch.allclose(free, free_plain, atol=1e-5)
    assert torch.equal(beamed, beamed_plain)
    assert torch.allclose(context, memory[:, 0], atol=1e-5)  # and are not in the context
    assert not torch.allclose(context, keys[:, 0], atol=1e-2)
    with pytest.raises(ValueError, match="positions must be true, false, 'keys' or 'concat', got 'auto'"):
        CRNNAttention(8, 12, channels=1, width=120, positions="auto", **SLIM)


def test_position_attention_slots_follow_the_maximum_width(tmp_path):
    from seq2seq_lab.assemble import build_datamodule, build_system

    cfg = compose_config("train", ["experiment=ocr_crnn_attention", "data.width=400", "model.width_mult=0.25",
                                   "model.rnn_hidden=16", "model.hidden_dim=16", "model.embed_dim=8"], tmp_path)
    (tmp_path / "charset.txt").write_text("a\nb\n", encoding="utf-8")
    cfg.data.charset = str(tmp_path / "charset.txt")
    system = build_system(cfg, build_datamodule(cfg))
    assert system.net.decoder.attention.max_positions == 101  # 400 // 4 + 1
    with pytest.raises(ValueError, match=r"101 slots but a line has valid steps past them \(102 steps in all\)"):
        system.net.encoder.eval()
        system(torch.rand(1, 3, 32, 404), torch.tensor([404]))


def _render_line(text: str, height: int = 32) -> bytes:
    """``text`` drawn with Pillow's default font, as PNG bytes of a ``height``-pixel line as wide as it needs."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=24)
    image = Image.new("L", (int(font.getlength(text)) + 8, height), 230)
    ImageDraw.Draw(image).text((4, 3), text, fill=20, font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_a_slim_attention_model_overfits_a_35_character_line_of_its_own_width():
    from seq2seq_lab.data.ocr.transforms import LineImageTransform
    from seq2seq_lab.data.ocr.widths import pad_batch
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.systems import OCRSystem

    text = "the quick brown fox jumps over 1234"
    image, width = LineImageTransform(32, 560, channels=1)(_render_line(text))
    assert len(text) == 35 and 360 < width < 560  # a variable-width line: neither squashed nor padded
    images, lengths = pad_batch([image], 560)
    tokenizer = Tokenizer(sorted(set(text)))
    targets, target_lengths = tokenizer.batch_encode([text])
    batch = {"inputs": images, "input_lengths": lengths, "targets": targets, "target_lengths": target_lengths}
    torch.manual_seed(0)
    model = CRNNAttention(targets.size(1), tokenizer.vocab_size, channels=1, width=560, hidden_dim=64, embed_dim=16,
                          width_mult=0.125, rnn_hidden=48, teacher_force=1.0, ctc_head=True, batch_norm="all")
    system = OCRSystem(model, tokenizer, ctc_weight=0.3, optimizer=torch.optim.Adam)
    optimizer = torch.optim.Adam(system.parameters(), lr=3e-3)
    texts = [""]
    for step in range(300):
        system.train()
        optimizer.zero_grad()
        system.compute_loss(batch)[0].backward()
        optimizer.step()
        if step % 10 == 9:
            texts, _ = system.eval().transcribe(images, lengths)
            if texts[0] == text:
                break
    assert texts[0] == text, (step, texts)
    wider, wider_lengths = pad_batch([image, torch.zeros(1, 32, 560)], 560)
    assert system.transcribe(wider, wider_lengths)[0][0] == text  # and in a batch padded to 560


def test_training_decodes_no_step_past_the_batchs_longest_line_with_the_same_loss_and_gradients():
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.systems import OCRSystem
    from seq2seq_lab.systems.seq2seq import trim_targets

    tokenizer = Tokenizer("abcdefgh")
    targets, target_lengths = tokenizer.batch_encode(["abc", "defgh"], max_length=40)  # (2, 41): mostly PAD
    torch.manual_seed(0)
    images = torch.rand(2, 1, 32, 120) * 2 - 1
    batch = {"inputs": images, "input_lengths": torch.tensor([120, 96]), "targets": targets,
             "target_lengths": target_lengths}
    trimmed = trim_targets(batch)
    assert targets.size(1) == 41 and trimmed["targets"].size(1) == 6  # "defgh" and EOS
    assert torch.equal(trimmed["targets"], targets[:, :6]) and batch["targets"] is targets  # the batch is left as it was
    model = CRNNAttention(41, tokenizer.vocab_size, channels=1, width=120, hidden_dim=16, embed_dim=8,
                          width_mult=0.125, rnn_hidden=16, teacher_force=1.0)
    system = OCRSystem(model, tokenizer, optimizer=torch.optim.Adam).train()
    losses, grads = [], []
    for b in (batch, trimmed):
        system.zero_grad()
        loss, outputs = system.compute_loss(b)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in system.parameters() if p.grad is not None]))
        assert outputs["logits"].size(1) == b["targets"].size(1)  # the decoder ran that many steps
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(grads[0], grads[1])
    assert trim_targets(trimmed) is trimmed  # nothing to cut


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_birnn_reads_each_row_over_its_valid_steps_as_packing_would(cell):
    """The unpacked length-aware BiRNN equals a packed one on every valid step, in value and gradient."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seq2seq_lab.models.encoders import run_packed

    torch.manual_seed(0)
    layer = _BiRNN(cell, 16, 12, 10).double()
    x = torch.randn(5, 9, 16, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([9, 3, 7, 1, 8])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected = layer.linear(pad_packed_sequence(layer.rnn(packed)[0], batch_first=True, total_length=9)[0])
    got = layer(x, lengths)
    valid = (torch.arange(9)[None] < lengths[:, None]).unsqueeze(2)  # (B, T, 1)
    torch.testing.assert_close(got * valid, expected * valid)
    torch.testing.assert_close(layer.linear(run_packed(layer.rnn, x, lengths)[0]) * valid, expected * valid)  # the GPU's way
    grads = [torch.autograd.grad((y * valid).sum(), x)[0] for y in (got, expected)]
    torch.testing.assert_close(grads[0], grads[1])
    padded = torch.cat([x, torch.randn(5, 4, 16, dtype=torch.double)], 1)  # wider batch, other padding
    torch.testing.assert_close(layer(padded, lengths)[:, :9] * valid, expected * valid)


# --- model.positions=auto ----------------------------------------------------------------------
def _built(tiny_corpus, tmp_path, overrides: list[str]):
    from seq2seq_lab.assemble import build_datamodule, build_system

    cfg = compose_config("train", [
        "experiment=ocr_crnn_attention", f"data.train={tiny_corpus}/train.txt", f"data.val={tiny_corpus}/val.txt",
        f"data.test={tiny_corpus}/test.txt", f"data.charset={tiny_corpus}/charset.txt", "data.max_length=3",
        "data.width=64", "model.width_mult=0.25", "model.rnn_hidden=16", *overrides], tmp_path)
    return build_system(cfg, build_datamodule(cfg))


@pytest.mark.parametrize("flags, precision, accelerator, expected", [
    ({"avx2", "fma"}, "auto", "cpu", "concat"),           # no bf16: fp32, few steps in the budget
    ({"avx2", "avx512_bf16", "amx_bf16"}, "auto", "cpu", False),  # bf16-mixed
    ({"avx2", "amx_bf16"}, "32-true", "cpu", "concat"),    # fp32 asked for on a bf16 CPU
    ({"avx2", "fma"}, "32-true", "gpu", False),            # a GPU's budget holds many steps
])
def test_auto_column_encodings_follow_the_training_precision(flags, precision, accelerator, expected,
                                                             tiny_corpus, tmp_path, monkeypatch):
    import seq2seq_lab.precision as precision_module
    from seq2seq_lab.assemble import resolve_auto_positions
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))
    cfg = OmegaConf.create({"model": {"positions": "auto"}, "trainer": {"precision": precision,
                                                                       "accelerator": accelerator}})
    resolve_auto_positions(cfg)
    assert cfg.model.positions == expected and type(cfg.model.positions) is type(expected)
    if accelerator == "cpu":  # built from a config, the checkpoint's run_config holds the choice, not "auto"
        system = _built(tiny_corpus, tmp_path, ["model.positions=auto", f"trainer.precision={precision}"])
        assert system.net.encoder.positions == expected and system.run_config["model"]["positions"] == expected


@pytest.mark.parametrize("flags, precision, accelerator, expected", [
    ({"avx2", "fma"}, "auto", "cpu", [8, 16, 32, 32, 64, 128, 128]),           # no bf16: fp32, few steps in the budget
    ({"avx2", "amx_bf16"}, "auto", "cpu", None),                                # bf16-mixed: width_mult's 0.25
    ({"avx2", "amx_bf16"}, "32-true", "cpu", [8, 16, 32, 32, 64, 128, 128]),   # fp32 asked for on a bf16 CPU
    ({"avx2", "fma"}, "32-true", "gpu", None),                                  # a GPU
])
def test_ocr_zh_cpu_sizes_its_conv_stack_for_the_training_precision(flags, precision, accelerator, expected,
                                                                    tmp_path, monkeypatch):
    import seq2seq_lab.precision as precision_module
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))
    trainer = [f"trainer.precision={precision}", f"trainer.accelerator={accelerator}"]
    model = OmegaConf.to_container(compose_config("train", ["experiment=ocr_zh_cpu", *trainer], tmp_path),
                                   resolve=True)["model"]
    assert model["conv_channels"] == expected and model["width_mult"] == 0.25 and model["column_stride"] == 4
    explicit = compose_config("train", ["experiment=ocr_zh_cpu", *trainer, "model.conv_channels=null",
                                        "model.width_mult=0.5", "model.column_stride=8"], tmp_path)
    assert (explicit.model.conv_channels, explicit.model.width_mult, explicit.model.column_stride) == (
        None, 0.5, 8)  # an explicit setting wins


@pytest.mark.parametrize("flags, precision, accelerator, wide", [
    ({"avx2", "fma"}, "auto", "cpu", False),               # fp32: the generator's ranges
    ({"avx2", "amx_bf16"}, "auto", "cpu", True),           # bf16-mixed: fainter ink, harsher JPEG
    ({"avx2", "amx_bf16"}, "32-true", "cpu", False),
    ({"avx2", "fma"}, "32-true", "gpu", True),
])
def test_ocr_zh_cpu_widens_its_looks_where_it_trains_in_bf16_into_a_corpus_of_their_own(
        flags, precision, accelerator, wide, tmp_path, monkeypatch):
    import seq2seq_lab.precision as precision_module
    from seq2seq_lab.data.synth.look import LookConfig

    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))
    trainer = [f"trainer.precision={precision}", f"trainer.accelerator={accelerator}"]
    resolved = OmegaConf.to_container(compose_config("train", ["experiment=ocr_zh_cpu", *trainer], tmp_path),
                                      resolve=True)
    synth = resolved["synth"]
    look = LookConfig(**synth["look"])
    # tight crops either way, and the paper beside a line cut off where it reads (not where it trains)
    assert resolved["data"]["trim_margins"] == "read"
    if wide:  # fainter ink, harsher JPEG
        assert (look.contrast, look.jpeg_quality) == ((25, 230), (15, 95))
        assert synth["out_dir"].endswith("/synth_zh_mixed_len10_300k_stretch16_wide_twins")
    else:  # the generator's own ranges
        assert (look.contrast, look.jpeg_quality) == (LookConfig().contrast, LookConfig().jpeg_quality)
        assert synth["out_dir"].endswith("/synth_zh_mixed_len10_300k_stretch16_twins")
    assert (synth["ascii_twins"], synth["twin_share"]) == ("（）", 0.5)  # either way
    tight = (look.p_margin, look.blur_kernel, look.font_size, look.blur_sigma)
    assert tight == (0.0, 3, (0.62, 0.92), (0.3, 1.0))
    explicit = compose_config("train", ["experiment=ocr_zh_cpu", *trainer, "synth.look.contrast=[60,200]",
                                        "synth.out_dir=elsewhere"], tmp_path)
    assert (list(explicit.synth.look.contrast), explicit.synth.out_dir) == ([60, 200], "elsewhere")


def test_ocr_zh_cpu_keeps_the_checkpoint_of_the_best_character_level_score(tmp_path):
    """Line accuracy on 2,000 validation lines ties now and then; 1 - NED breaks such ties by characters."""
    from seq2seq_lab.systems.text_metrics import text_metrics

    cfg = compose_config("train", ["experiment=ocr_zh_cpu"], tmp_path)
    assert (cfg.system.monitor, cfg.callbacks.model_checkpoint.monitor, cfg.callbacks.model_checkpoint.mode,
            cfg.optimized_metric) == ("ned", "val/ned", "max", "val/ned_best")
    scores = []
    for reading in ("我们的国家", "我们的国", "我们"):  # ever worse readings of one line score ever lower
        ned = text_metrics()["val"]["ned"]  # a metric validation logs
        ned.update([reading], ["我们的国家"])
        scores.append(float(ned.compute()))
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0 > scores[1]


@pytest.mark.parametrize("flags, precision, expected", [
    ({"avx2", "fma"}, "auto", (1, 1.0)),           # no bf16: fp32, ~60% of the steps in the 40 minutes
    ({"avx2", "avx512_bf16"}, "auto", (2, 0.5)),   # bf16-mixed: the README's model
    ({"avx2", "avx512_bf16"}, "32-true", (1, 1.0)),
])
def test_ocr_synth_cpu_sizes_its_recurrence_for_the_training_precision(flags, precision, expected, tmp_path,
                                                                      monkeypatch):
    import seq2seq_lab.precision as precision_module
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))
    cfg = compose_config("train", ["experiment=ocr_synth_cpu", f"trainer.precision={precision}"], tmp_path)
    model = OmegaConf.to_container(cfg, resolve=True)["model"]
    assert (model["rnn_layers"], model["teacher_force"]) == expected
    explicit = compose_config("train", ["experiment=ocr_synth_cpu", f"trainer.precision={precision}",
                                        "model.rnn_layers=2", "model.teacher_force=0.25"], tmp_path)
    assert (explicit.model.rnn_layers, explicit.model.teacher_force) == (2, 0.25)  # an explicit setting wins


def test_a_config_with_a_list_valued_if_fp32_cpu_resolves_in_place(tmp_path):
    """``--cfg job --resolve`` resolves the config in place, where a resolver's plain list is refused."""
    cfg = compose_config("train", ["experiment=ocr_zh_cpu", "trainer.precision=32-true"], tmp_path)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # what --cfg job prints
    OmegaConf.resolve(job)
    assert list(job.model.conv_channels) == [8, 16, 32, 32, 64, 128, 128]


def test_a_built_system_stores_the_resolved_if_fp32_cpu_value(tiny_corpus, tmp_path, monkeypatch):
    """The checkpoint's run_config holds the values, so the model rebuilds alike on any machine."""
    import seq2seq_lab.precision as precision_module

    late = "model.conv_channels=${if_fp32_cpu:[8,16,32,32,64,64,64],null}"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    system = _built(tiny_corpus, tmp_path, ["model.width_mult=${if_fp32_cpu:0.125,0.25}", late, "trainer.precision=auto"])
    assert system.run_config["model"]["width_mult"] == 0.125 and system.net.encoder.conv_channels[:3] == [8, 16, 32]
    assert system.run_config["model"]["conv_channels"] == [8, 16, 32, 32, 64, 64, 64]
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    system = _built(tiny_corpus, tmp_path, ["model.width_mult=${if_fp32_cpu:0.125,0.25}", late, "trainer.precision=auto"])
    assert system.run_config["model"]["width_mult"] == 0.25 and system.net.encoder.conv_channels[:3] == [16, 32, 64]
    assert system.run_config["model"]["conv_channels"] is None


def test_explicit_column_encodings_win_and_a_bad_value_is_refused(tiny_corpus, tmp_path, monkeypatch):
    import seq2seq_lab.precision as precision_module
    from seq2seq_lab.errors import ConfigError
    from seq2seq_lab.validation import validate_config

    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2"}))
    assert _built(tiny_corpus, tmp_path, ["model.positions=false"]).net.encoder.positions is False
    with pytest.raises(ValueError, match="positions must be true, false or 'concat', got 'auto'"):
        CRNNEncoder(channels=1, width_mult=0.25, rnn_hidden=16, positions="auto")
    cfg = compose_config("train", ["experiment=ocr_crnn_attention", "model.positions=maybe"], tmp_path)
    with pytest.raises(ConfigError, match="model.positions"):
        validate_config(cfg, check_paths=False)


def test_the_summary_under_bf16_is_the_mean_rounded_once():
    """With widths that fill the batch the summary is ``memory.mean(1)`` to the bit, under bf16 autocast
    too (a bf16 sum rounded before its division sent training elsewhere from the first step), and
    with padding the mean over the valid columns."""
    torch.manual_seed(0)
    encoder = CRNNEncoder(channels=1, **SLIM).eval()
    images = torch.rand(3, 1, 32, 120)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        memory, _, summary = encoder(images, torch.tensor([120, 120, 120]))
        assert memory.dtype == summary.dtype == torch.bfloat16
        assert torch.equal(summary, memory.mean(1))
        memory, _, summary = encoder(images, torch.tensor([120, 64, 120]))
        assert torch.equal(summary[1], memory[1, :17].mean(0))
