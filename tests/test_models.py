"""Model layer: shapes, attention, teacher forcing, search, builders."""

from __future__ import annotations

import itertools

import pytest
import torch

from seq2seq_lab.models import ATTENTIONS, CELLS, AttentionSeq2Seq, SequenceClassifier, SimpleSeq2Seq
from seq2seq_lab.models.attention import build_attention
from seq2seq_lab.models.search import beam, greedy

B, T, F, L, V = 3, 7, 5, 4, 6


def attention_spec(name: str):
    if name == "position":
        return lambda query_dim, key_dim: ATTENTIONS["position"](query_dim, key_dim, max_positions=T)
    return name


@pytest.mark.parametrize(
    "cell,attention,depth,builder",
    list(itertools.product(CELLS, sorted(ATTENTIONS), [1, 2, (1, 3)], [SimpleSeq2Seq, AttentionSeq2Seq])),
)
def test_output_shapes_every_cell_attention_depth(cell, attention, depth, builder):
    model = builder(T, F, 8, L, V, depth=list(depth) if isinstance(depth, tuple) else depth, cell=cell,
                    attention=attention_spec(attention), dropout=0.1)
    outputs, weights = model(torch.randn(B, T, F), torch.tensor([T, 5, 2]))
    assert outputs.shape == (B, L, V)
    assert weights.shape == (B, L, T)
    assert torch.isfinite(outputs).all()
    token_model = builder(T, F, 8, L, V, depth=depth, cell=cell, attention=attention_spec(attention), embed_dim=4)
    logits, weights = token_model(torch.randn(B, T, F), None, torch.randint(0, V, (B, L)))
    assert logits.shape == (B, L, V) and weights.shape == (B, L, T)


@pytest.mark.parametrize("name", [n for n in sorted(ATTENTIONS) if n != "none"])
def test_attention_weights_sum_to_one_and_vanish_where_masked(name):
    torch.manual_seed(0)
    module = build_attention(attention_spec(name), query_dim=6, key_dim=10)
    keys = torch.randn(B, T, 10)
    lengths = torch.tensor([T, 4, 1])
    mask = torch.arange(T) < lengths.unsqueeze(1)
    context, weights = module(torch.randn(B, 6), keys, mask)
    assert context.shape == (B, 10) and weights.shape == (B, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    torch.testing.assert_close(context, torch.einsum("bt,btk->bk", weights, keys))


def test_no_attention_gives_empty_context():
    context, weights = build_attention("none", 6, 10)(torch.randn(B, 6), torch.randn(B, T, 10))
    assert context.shape == (B, 0) and (weights == 0).all()


def test_unknown_attention_and_cell_are_clear_errors():
    with pytest.raises(ValueError, match="unknown attention 'bahdanau'.*mlp"):
        AttentionSeq2Seq(T, F, 8, L, V, attention="bahdanau")
    with pytest.raises(ValueError, match="cell='lstmx': must be one of rnn, lstm, gru"):
        SimpleSeq2Seq(T, F, 8, L, V, cell="lstmx")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"depth": 0}, r"depth=0: must be an integer >= 1, or \[encoder, decoder\]"),
        ({"depth": [1, 2, 3]}, r"depth=\[1, 2, 3\]: must be an integer >= 1, or \[encoder, decoder\]"),
        ({"hidden_dim": 0}, "hidden_dim=0: must be an integer >= 1"),
        ({"output_length": 0}, "output_length=0: must be an integer >= 1"),
        ({"teacher_force": 1.5}, r"teacher_force=1.5: must be a number in \[0, 1\]"),
        ({"hidden_dim": 0, "dropout": 1.0}, r"hidden_dim=0: must be an integer >= 1; dropout=1.0: must be a number"),
    ],
)
def test_builder_rejects_bad_arguments(kwargs, message):
    args = {"input_length": T, "input_dim": F, "hidden_dim": 8, "output_length": L, "output_dim": V, **kwargs}
    with pytest.raises(ValueError, match=message):
        AttentionSeq2Seq(**args)


class Recorder(torch.nn.Module):
    """Wraps a feedback module and records which path fed each step."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.dim, self.calls = inner, inner.dim, []

    def start(self, *a):
        return self.inner.start(*a)

    def from_targets(self, targets):
        self.calls.append(("target", targets.clone()))
        return self.inner.from_targets(targets)

    def from_logits(self, logits):
        self.calls.append(("own", logits.argmax(-1)))
        return self.inner.from_logits(logits)


@pytest.mark.parametrize("ratio,expected", [(1.0, "target"), (0.0, "own")])
def test_teacher_forcing_ratio_feeds_targets_or_own_predictions(ratio, expected):
    torch.manual_seed(0)
    model = AttentionSeq2Seq(T, F, 8, L, V, embed_dim=4)
    model.decoder.feedback = Recorder(model.decoder.feedback)
    targets = torch.randint(0, V, (B, L))
    logits, _ = model(torch.randn(B, T, F), None, targets, teacher_forcing=ratio)
    calls = model.decoder.feedback.calls
    assert [kind for kind, _ in calls] == [expected] * (L - 1)
    for t, (_, fed) in enumerate(calls):
        want = targets[:, t] if expected == "target" else logits[:, t].argmax(-1)
        assert torch.equal(fed, want)


@pytest.mark.parametrize("embed_dim", [4, None])
def test_full_teacher_forcing_maps_all_steps_at_once_as_step_by_step(embed_dim):
    """Under full teacher forcing the decoder applies its output layer to all steps in one
    product: the outputs, attention and gradients are those of one ``step`` at a time."""
    torch.manual_seed(0)
    model = AttentionSeq2Seq(T, F, 8, L, V, embed_dim=embed_dim)
    x = torch.randn(B, T, F)
    targets = torch.randint(0, V, (B, L)) if embed_dim else torch.randn(B, L, V)
    outputs, weights = model(x, None, targets, teacher_forcing=1.0)
    (outputs ** 2).sum().backward()
    batched_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    decoder = model.decoder
    memory, mask, summary = model.encode(x)
    state, keys = decoder.initial_state(summary), decoder.keys(memory)
    cache, prev = decoder.attention.precompute(keys), decoder.feedback.start(B, x.device)
    steps = []
    for t in range(L):
        output, w, state = decoder.step(prev, state, memory, mask, summary, cache, keys)
        steps.append((output, w))
        prev = decoder.feedback.from_targets(targets[:, t])
    stepped = torch.stack([o for o, _ in steps], dim=1)
    torch.testing.assert_close(outputs, stepped)
    torch.testing.assert_close(weights, torch.stack([w for _, w in steps], dim=1))
    (stepped ** 2).sum().backward()
    for batched, param in zip(batched_grads, model.parameters()):
        torch.testing.assert_close(batched, param.grad)


def test_teacher_forcing_ratio_between_mixes_per_step():
    torch.manual_seed(0)
    model = AttentionSeq2Seq(T, F, 8, 40, V, embed_dim=4)
    model.decoder.feedback = Recorder(model.decoder.feedback)
    model(torch.randn(B, T, F), None, torch.randint(0, V, (B, 40)), teacher_forcing=0.5)
    kinds = [kind for kind, _ in model.decoder.feedback.calls]
    assert 8 < kinds.count("target") < 31  # 39 draws at p=0.5


def test_teacher_forcing_changes_outputs():
    torch.manual_seed(0)
    model = AttentionSeq2Seq(T, F, 8, L, V, embed_dim=4).eval()
    x, targets = torch.randn(B, T, F), torch.randint(0, V, (B, L))
    forced, _ = model(x, None, targets, teacher_forcing=1.0)
    free, _ = model(x, None, targets, teacher_forcing=0.0)
    torch.testing.assert_close(forced[:, 0], free[:, 0])  # the first step sees SOS either way
    assert not torch.allclose(forced, free)


def test_beam_width_one_equals_greedy():
    torch.manual_seed(1)
    model = AttentionSeq2Seq(T, F, 16, 6, 9, embed_dim=8).eval()
    memory, mask, summary = model.encode(torch.randn(5, T, F), torch.tensor([7, 6, 5, 4, 3]))
    g_tokens, g_scores, _ = greedy(model.decoder, memory, mask, summary, 6, eos_id=1)
    b_tokens, b_scores = beam(model.decoder, memory, mask, summary, 6, eos_id=1, beam_width=1)
    n = min(g_tokens.size(1), b_tokens.size(1))
    for g, b in zip(g_tokens[:, :n].tolist(), b_tokens[:, :n].tolist()):
        cut = g.index(1) + 1 if 1 in g else n
        assert g[:cut] == b[:cut]
    torch.testing.assert_close(g_scores, b_scores)


def test_wider_beam_never_scores_worse():
    torch.manual_seed(2)
    model = AttentionSeq2Seq(T, F, 16, 6, 9, embed_dim=8).eval()
    memory, mask, summary = model.encode(torch.randn(4, T, F))
    _, one = beam(model.decoder, memory, mask, summary, 6, eos_id=1, beam_width=1)
    _, four = beam(model.decoder, memory, mask, summary, 6, eos_id=1, beam_width=4)
    assert (four >= one - 1e-5).all()


def test_keras_recipe_parameter_counts():
    """Close to the Keras tutorial's 11,378 and 25,469 (torch LSTMs carry two bias vectors)."""
    simple = SequenceClassifier(SimpleSeq2Seq(28, 28, 32, 10, 10), 10)
    attention = SequenceClassifier(AttentionSeq2Seq(28, 28, 32, 10, 10), 10)
    assert sum(p.numel() for p in simple.parameters()) == 11436
    assert sum(p.numel() for p in attention.parameters()) == 25836


def test_position_attention_takes_steps_past_its_slots_only_as_padding():
    torch.manual_seed(0)
    attention = ATTENTIONS["position"](8, 6, max_positions=4)
    query, keys = torch.randn(2, 8), torch.randn(2, 6, 6)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 3 + [False] * 3])
    context, weights = attention(query, keys, mask)
    short_context, short_weights = attention(query, keys[:, :4], mask[:, :4])
    assert weights.shape == (2, 6) and torch.equal(weights[:, 4:], torch.zeros(2, 2))
    assert torch.allclose(weights[:, :4], short_weights) and torch.allclose(context, short_context)
    with pytest.raises(ValueError, match=r"4 slots but a line has valid steps past them \(6 steps in all\)"):
        attention(query, keys, mask | torch.tensor([False] * 5 + [True]))
    with pytest.raises(ValueError, match="4 slots"):
        attention(query, keys)


def test_location_attention_starts_as_additive_and_then_reads_where_it_looked():
    """A fresh location attention scores as the additive one with the same weights (its location
    projection starts at zero, so an mlp checkpoint is a valid start); once that projection is
    not zero, the same query and keys give other weights for another history, still 0 on masked
    steps and summing to 1 over the others."""
    from seq2seq_lab.models.attention import AdditiveAttention, LocationAttention

    torch.manual_seed(0)
    location = LocationAttention(8, 6, filters=4, kernel_size=3)
    additive = AdditiveAttention(8, 6)
    additive.load_state_dict({k: v for k, v in location.state_dict().items() if not k.startswith("location_")})
    query, keys = torch.randn(B, 8), torch.randn(B, T, 6)
    mask = torch.arange(T) < torch.tensor([[T], [5], [2]])
    history = torch.rand(B, 2, T) * mask.unsqueeze(1)
    context, weights = location(query, keys, mask, history=history)
    plain_context, plain_weights = additive(query, keys, mask)
    torch.testing.assert_close(weights, plain_weights)
    torch.testing.assert_close(context, plain_context)

    torch.nn.init.normal_(location.location_proj.weight, std=1.0)
    _, moved = location(query, keys, mask, history=history)
    _, fresh = location(query, keys, mask)  # no history: zeros, as at the first step
    assert (moved - fresh).abs().max() > 1e-2
    assert torch.all(moved[~mask] == 0)
    torch.testing.assert_close(moved.sum(-1), torch.ones(B))
    with pytest.raises(ValueError, match="odd kernel_size"):
        LocationAttention(8, 6, kernel_size=4)


def test_the_decoder_keeps_the_attention_history_for_location_attention():
    """Step by step, the decoder's state carries the last step's and the summed weights; teacher-forced
    decoding of all steps at once and one step at a time agree, and beam search of width 1 is greedy."""
    torch.manual_seed(0)
    model = AttentionSeq2Seq(T, F, 8, L, V, embed_dim=4, attention="location")
    torch.nn.init.normal_(model.decoder.attention.location_proj.weight, std=1.0)
    x, targets = torch.randn(B, T, F), torch.randint(2, V, (B, L))
    with torch.no_grad():
        outputs, weights = model(x, torch.tensor([T, 5, 2]), targets, teacher_forcing=1.0)
        memory, mask, summary = model.encode(x, torch.tensor([T, 5, 2]))
        decoder = model.decoder
        state, keys = decoder.initial_state(summary), decoder.keys(memory)
        assert state.history is None
        prev, stepped, summed = decoder.feedback.start(B, x.device), [], torch.zeros(B, T)
        for t in range(L):
            output, w, state = decoder.step(prev, state, memory, mask, summary, None, keys)
            summed = summed + w
            torch.testing.assert_close(state.history, torch.stack([w, summed], dim=1))
            stepped.append(output)
            prev = decoder.feedback.from_targets(targets[:, t])
        torch.testing.assert_close(outputs, torch.stack(stepped, dim=1))
        tokens, scores, _ = greedy(decoder, memory, mask, summary, L, eos_id=1)
        beamed, beam_scores = beam(decoder, memory, mask, summary, L, eos_id=1, beam_width=1)
    n = tokens.size(1)
    assert torch.equal(tokens, beamed[:, :n]) and torch.allclose(scores, beam_scores, atol=1e-5)
