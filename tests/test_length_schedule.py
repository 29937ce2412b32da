"""Short lines first (data.length_schedule): the batch sampler and the run's progress (the data module: test_ocr_data)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import Timer

from seq2seq_lab.data.batching import EpochRandomSampler
from seq2seq_lab.data.length_schedule import LengthScheduleBatchSampler, check_length_schedule, training_progress
from seq2seq_lab.errors import ConfigError


def _sampler(n: int, lengths: list[int], now: list[float], seed: int = 5, epoch: int = 0, batch_size: int = 8):
    rng = random.Random(1)
    widths = [rng.randint(20, 800) for _ in range(n)]
    order = EpochRandomSampler(range(n), seed)
    order.set_epoch(epoch)
    return LengthScheduleBatchSampler(order, batch_size, False, widths, lengths, [[0, 10], [0.6, 40]],
                                      progress=lambda: now[0], seed=seed)


def test_batches_hold_short_lines_until_the_next_stage_starts_and_then_every_line():
    rng = random.Random(0)
    n = 400
    lengths = [10 if rng.random() < 0.8 else rng.randint(2, 40) for _ in range(n)]
    short = {i for i in range(n) if lengths[i] <= 10}
    now = [0.0]
    sampler = _sampler(n, lengths, now)
    assert len(sampler) == 50  # an epoch of all the lines, whatever the stage

    def epoch(switch_at: int) -> list[list[int]]:
        batches = []
        now[0] = 0.0
        for k, batch in enumerate(sampler):
            batches.append(batch)
            if k + 1 == switch_at:
                now[0] = 0.6  # the stage is looked up at every batch
        return batches

    batches = epoch(switch_at=45)
    assert len(batches) == 50
    first, later = batches[:45], batches[45:]
    assert all(i in short for b in first for i in b)
    # 45 batches of 8 are more than the epoch's short lines: the stage made another pass over them, in another order
    seen = [i for b in first for i in b]
    assert len(seen) > len(short) and set(seen) == short
    assert any(i not in short for b in later for i in b)
    assert epoch(switch_at=45) == batches  # deterministic for the seed, the epoch and the switch
    assert epoch(switch_at=20)[:20] == batches[:20] and epoch(switch_at=20)[20:] != batches[20:45]
    other = _sampler(n, lengths, now, epoch=1)
    now[0] = 0.0
    assert list(other)[:5] != batches[:5]


def test_a_stage_that_allows_no_line_is_refused():
    with pytest.raises(ValueError, match="no line has at most 10 characters"):
        _sampler(20, [12] * 20, [0.0])


@pytest.mark.parametrize("schedule, problem", [
    ([[0.1, 10]], "first stage must start at 0"),
    ([[0, 10], [0.6, 40], [0.5, 20]], "starts must rise"),
    ([[0, 10], [1.0, 40]], "stay below 1"),
    ([[0, 0]], "integer >= 1"),
    ([[0, 10.5]], "integer >= 1"),
    ("0,10", "list of \\[start, max_chars\\] pairs"),
    ([], "first stage must start at 0"),
])
def test_bad_schedules_are_refused_by_key(schedule, problem):
    with pytest.raises(ConfigError, match=f"data.length_schedule=.*{problem}"):
        check_length_schedule(schedule)


def test_training_progress_is_the_further_of_steps_and_time():
    timer = Timer(duration="00:00:01:40")  # 100 s
    timer.time_elapsed = lambda stage="train": 30.0
    trainer = SimpleNamespace(estimated_stepping_batches=1000, global_step=100, callbacks=[timer])
    assert training_progress(trainer) == pytest.approx(0.3)
    trainer.global_step = 500
    assert training_progress(trainer) == pytest.approx(0.5)
    trainer.callbacks, trainer.estimated_stepping_batches = [], float("inf")
    assert training_progress(trainer) == 0.0 and training_progress(None) == 0.0


def test_training_progress_follows_the_one_cycle_schedule_and_its_clock_slack():
    """With OneCycleWithinTime the stages start where its learning rates say the run is: the
    steps' share while the clock leads by less than the slack (a seed fixes the stage), the
    clock's once it leads by more (the old max would have taken the clock's 0.304 at once)."""
    import torch

    from seq2seq_lab.systems.schedules import OneCycleWithinTime

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = OneCycleWithinTime(optimizer, max_lr=1e-3, total_steps=1001, max_seconds=100.0, clock_slack=0.01)
    for _ in range(300):
        scheduler.step()
    timer = Timer(duration="00:00:01:40")
    timer.time_elapsed = lambda stage="train": 30.4
    trainer = SimpleNamespace(estimated_stepping_batches=1001, global_step=300, callbacks=[timer],
                              lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)])
    scheduler.elapsed = 30.4  # the clock's position 304: 4 steps ahead, under the slack of 10
    assert training_progress(trainer) == pytest.approx(0.3)
    scheduler.elapsed = 31.5  # 315: 15 steps ahead, the clock drives
    assert training_progress(trainer) == pytest.approx(0.315)
    trainer.lr_scheduler_configs = []  # no such scheduler: the larger share, as before
    assert training_progress(trainer) == pytest.approx(0.304)


def test_the_schedule_survives_lightning_distributed_sampler_injection():
    """Under DDP, Lightning re-creates the batch sampler around a DistributedSampler: each rank
    keeps the schedule, and the ranks run as many batches."""
    import functools

    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DistributedSampler

    from seq2seq_lab.data.batching import make_loader

    n = 60
    lengths = [4 if i % 3 else 12 for i in range(n)]
    now = [0.0]
    bucketing = functools.partial(LengthScheduleBatchSampler, lengths=lengths, schedule=[[0, 10], [0.5, 40]],
                                  progress=lambda: now[0])
    with _replace_dunder_methods(BatchSampler):  # as Lightning does around the *_dataloader hooks
        loader = make_loader(list(range(n)), 4, shuffle=True, num_workers=0, seed=0, collate_fn=list,
                             widths=[(7 * i) % 101 for i in range(n)], bucketing=bucketing)
    ranks = []
    for rank in (0, 1):
        sampler = DistributedSampler(list(range(n)), num_replicas=2, rank=rank, shuffle=True, seed=0)
        ranked = _update_dataloader(loader, sampler)
        assert isinstance(ranked.batch_sampler, LengthScheduleBatchSampler) and ranked.batch_sampler.sampler is sampler
        now[0] = 0.0
        short = list(ranked)
        now[0] = 0.5
        ranks.append((short, list(ranked)))
    assert [len(s) for s, _ in ranks] == [len(a) for _, a in ranks] == [8, 8]
    assert all(lengths[i] <= 10 for short, _ in ranks for b in short for i in b)
    assert all(any(lengths[i] > 10 for b in every for i in b) for _, every in ranks)
    shard0 = {i for b in ranks[0][1] for i in b}
    assert not shard0 & {i for b in ranks[1][1] for i in b}  # disjoint shards
