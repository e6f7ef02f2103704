"""Spreading the kept candidates over the parameters the sound does not pin down (``wavinv.spread``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wavinv.metrics import diversity, lsd_db
from wavinv.spread import SPREAD_ROUNDS, SPREAD_TOLERANCE, keep_apart, spread, spread_renders, spread_rounds

TOY = Path(__file__).with_name("toygen.py")


def bowl(x: np.ndarray) -> np.ndarray:
    """A score in dB that only the first two of six parameters change."""
    return 3.0 + 40.0 * ((x[:, 0] - 0.3) ** 2 + (x[:, 1] - 0.7) ** 2)


def test_free_parameters_are_redrawn_and_no_candidate_loses_more_than_the_tolerance():
    rng = np.random.default_rng(0)
    unit = np.full((8, 6), 0.5)
    unit[:, :2] = [0.3, 0.7] + rng.normal(0, 0.01, (8, 2))
    unit[:, 2:] += rng.normal(0, 0.01, (8, 4))  # one basin: the search left them all alike
    scores = bowl(unit)
    order = np.argsort(scores)
    unit, scores = unit[order], scores[order]
    calls = []
    res = spread(lambda x: calls.append(len(x)) or bowl(x), unit, scores, random_state=1)
    assert res.renders == sum(calls) <= spread_renders(8, 6)
    np.testing.assert_array_equal(res.unit[0], unit[0])  # the best stays as it was
    assert not res.changed[0] and res.changed[1:].all()
    assert np.all(res.scores <= scores + SPREAD_TOLERANCE) and np.allclose(res.scores, bowl(res.unit))
    np.testing.assert_array_equal(res.unit[:, :2], unit[:, :2])  # the parameters the score pins down stay
    assert diversity(res.unit) > diversity(unit) + 0.15
    assert np.all(res.sensitivity[2:] == 0) and np.all(res.sensitivity[:2] > 0)
    again = spread(bowl, unit, scores, random_state=1)
    np.testing.assert_array_equal(res.unit, again.unit)


def test_nothing_to_spread_when_every_parameter_matters_or_one_candidate():
    def steep(x):
        return 100.0 * np.abs(x - 0.5).sum(1)

    unit = np.full((4, 3), 0.5) + np.arange(4)[:, None] * 1e-3
    res = spread(steep, unit, steep(unit), random_state=0)
    assert not res.changed.any() and res.renders == 3
    one = spread(steep, unit[:1], steep(unit[:1]), random_state=0)
    assert one.renders == 0 and spread_renders(1, 3) == 0


def test_a_larger_search_affords_more_rounds_of_spread_within_a_tenth_of_its_renders():
    rounds = [spread_rounds(budget, 16, 100) for budget in (0, 1024, 2048, 4096, 6144, 100_000)]
    assert rounds == sorted(rounds) and rounds[0] == SPREAD_ROUNDS and rounds[-1] == 32
    for budget in (4096, 6144):  # past the fewest rounds, the spread's renders stay within a tenth of the search's
        assert SPREAD_ROUNDS < spread_rounds(budget, 16, 100) and spread_renders(16, 100, spread_rounds(budget, 16, 100)) <= budget / 10
    assert spread_rounds(10**9, 1, 100) == 32 and spread_renders(1, 100, 32) == 0  # one candidate: nothing to spread


def test_failed_renders_never_count_as_free():
    unit = np.full((3, 2), 0.5)
    res = spread(lambda x: np.full(len(x), np.nan), unit, np.zeros(3), random_state=0)
    assert not res.changed.any() and np.isinf(res.sensitivity).all()


def test_inverter_spreads_the_parameter_the_sound_ignores(tmp_path):
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:idle", n=256, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    inv.attach(f"{TOY}:idle")
    target = Target("waveform", store.waveforms("test")[0], "t")
    kept = inv.invert(target, n=4, draws=8, random_state=0, refine=240, budgets=[16, 64])
    again = inv.invert(target, n=4, draws=8, random_state=0, refine=240, budgets=[16, 64])
    np.testing.assert_array_equal(kept.params, again.params)
    assert "spread" in kept.timing
    lsd = kept.distances["lsd_db"]
    assert np.all(np.diff(lsd) >= 0)
    np.testing.assert_allclose(lsd, lsd_db(kept.target_spectrogram, inv.spectrograms(kept.waveforms)))
    assert kept.anytime[-1] == (kept.n_renders, float(lsd[0]))
    assert kept.n_renders <= 8 + 240
    off = inv.invert(target, n=4, draws=8, random_state=0, refine=240, refine_options={"spread": False})
    assert "spread" not in off.timing
    assert np.ptp(kept.params_unit[:, 3]) >= 0.2  # the idle parameter: the candidates hold other values of it
    # rounds named: the spread takes its renders from the same budget
    counted = inv.invert(target, n=4, draws=8, random_state=0, refine=240, refine_options={"spread": 2})
    assert counted.n_renders <= 8 + 240 and "spread" in counted.timing


def test_the_spread_keeps_the_inversion_time_limit(tmp_path, monkeypatch):
    import wavinv.inverter as inverter
    from wavinv.errors import TimeLimitError
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:idle", n=128, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    inv.attach(f"{TOY}:idle")
    real_spread = inverter.spread

    def late(score, *args, **kwargs):  # the search finished in time; the clock runs out as the spread starts
        monkeypatch.setattr(inverter.time, "perf_counter", lambda: float("inf"))
        return real_spread(score, *args, **kwargs)

    monkeypatch.setattr(inverter, "spread", late)
    with pytest.raises(TimeLimitError, match="spread"):
        inv.invert(Target("waveform", store.waveforms("test")[0], "t"), n=4, draws=8, random_state=0, refine=240, time_limit=3600.0)


def test_keep_apart_gives_up_a_redraw_that_lands_on_a_point_put_back():
    unit = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    moved = unit.copy()
    moved[1] = [0.2, 0.2]  # kept: far from every point
    moved[2] = [0.5, 0.5]  # checked while row 1 had moved away; with row 1 put back it sits on it
    assert keep_apart(unit, moved, np.array([1, 2]), 0.1).tolist() == [1, 2]  # both move: apart
    assert keep_apart(unit, moved, np.array([2]), 0.1).tolist() == []  # row 1 undone: row 2 must stay
    assert keep_apart(unit, moved, np.array([2]), 0.0).tolist() == [2]  # no minimum: nothing to check
    moved[2] = [0.9, 0.9]
    assert keep_apart(unit, moved, np.array([2]), 0.1).tolist() == [2]
