"""Refinement through the generator: the search itself, the inverter's use of it, and seeded renders."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from wavinv import FunctionGenerator, InputError, Param, ParamSpace
from wavinv.errors import GeneratorError, ParamSpaceError, TimeLimitError
from wavinv.generators import load_generator, render_checked, takes_seed
from wavinv.metrics import lsd_db
from wavinv.refine import FAILED, frame_rms, polish_point, MIN_DISTANCE, distinct_best, refine

TOY = str(Path(__file__).parent / "toygen.py")


def sphere(centre):
    return lambda x: np.sum((np.asarray(x) - centre) ** 2, axis=1)


def test_refine_improves_every_seed_and_keeps_one_point_per_run():
    centre = np.full(10, 0.3)
    seeds = np.random.default_rng(0).random((4, 10))
    res = refine(sphere(centre), seeds, budget=4 * 14 * 30, popsize=14, sigma=0.1, halving=False, random_state=0)
    start = sphere(centre)(seeds)
    assert res.params_unit.shape == (4, 10) and res.n_generations == 30
    assert np.all(np.diff(res.scores) >= 0)  # best first
    assert np.all(np.sort(res.scores) <= np.sort(start))
    assert res.scores[0] < 0.1 * start.min()  # it really searches, not just keeps the seed
    assert len(np.unique(res.params_unit, axis=0)) == 4  # distinct runs stay distinct candidates
    np.testing.assert_allclose(sphere(centre)(res.params_unit), res.scores)


def test_refine_stays_in_the_unit_box_and_finds_a_corner():
    # the optimum is outside the box: the best reachable point is the corner
    res = refine(sphere(np.full(5, 1.5)), np.full((2, 5), 0.5), budget=2 * 10 * 40, popsize=10, halving=False, random_state=1)
    assert res.params_unit.min() >= 0.0 and res.params_unit.max() <= 1.0
    assert np.all(res.params_unit[0] > 0.95)


def test_halving_gives_the_best_runs_the_most_renders():
    calls = []

    def f(x):
        calls.append(len(x))
        return sphere(np.full(8, 0.5))(x)

    seeds = np.random.default_rng(2).random((8, 8))
    res = refine(f, seeds, budget=8 * 6 * 8, popsize=6, random_state=0, halving=True)
    # phases of 8, 4, 2 and 1 runs with equal budgets: the batches shrink as the field halves
    assert sorted(set(calls[1:]), reverse=True) == [48, 24, 12, 6]
    assert res.n_evals <= 8 + 8 * 6 * 8 and res.scores[0] < f(seeds).min()


def test_refine_is_deterministic_and_zero_budget_returns_the_seeds():
    f = sphere(np.full(6, 0.7))
    seeds = np.random.default_rng(3).random((3, 6))
    a = refine(f, seeds, budget=300, random_state=5)
    b = refine(f, seeds, budget=300, random_state=5)
    np.testing.assert_array_equal(a.params_unit, b.params_unit)
    c = refine(f, seeds, budget=300, random_state=6, strategy="cma")
    assert c.n_evals == a.n_evals
    zero = refine(f, seeds, budget=0)
    assert zero.n_generations == 0 and zero.n_evals == 3
    np.testing.assert_array_equal(np.sort(zero.scores), np.sort(f(seeds)))


@pytest.mark.parametrize(
    "kwargs",
    [{"budget": -1}, {"budget": 2.5}, {"budget": True}, {"sigma": 0.0}, {"sigma": 2.0}, {"strategy": "ga"}, {"popsize": 1},
     {"polish": 0.5}, {"polish": 1.0}, {"polish": -0.1}, {"polish": "0.2"}, {"polish": None}, {"polish": float("nan")},
     {"sigma": "0.1"}, {"sigma": None}, {"polish": 0.25, "residual": lambda x: x[:, :, None], "continuous": [True]}],
)
def test_refine_bad_settings(kwargs):
    args = {"budget": 100, **kwargs}
    with pytest.raises(InputError):
        refine(sphere(np.zeros(3)), np.zeros((2, 3)), **args)
    with pytest.raises(InputError):
        refine(sphere(np.zeros(3)), np.zeros(3), budget=10)  # seeds must be (S, P)
    with pytest.raises(InputError, match="seed_scores"):
        refine(sphere(np.zeros(3)), np.zeros((2, 3)), budget=10, seed_scores=np.zeros(3))


def _pictures(target: np.ndarray, mix: np.ndarray):
    """A smooth, coupled least-squares problem: residual pictures (B, 6, 4) of a nonlinear map of 5 parameters."""

    def residual(x: np.ndarray) -> np.ndarray:
        y = np.tanh(2.0 * (x - 0.5)) @ mix  # (B, 24)
        return (y - np.tanh(2.0 * (target - 0.5)) @ mix).reshape(len(x), 6, 4)

    return residual


def test_polish_descends_on_the_residual_picture_and_moves_only_continuous_parameters():
    rng = np.random.default_rng(0)
    target, mix = rng.uniform(0.2, 0.8, 5), rng.normal(size=(5, 24))
    residual = _pictures(target, mix)
    start = np.clip(target + rng.normal(0.0, 0.15, 5), 0.0, 1.0)
    f0 = frame_rms(residual(start[None]))[0]
    x, f = polish_point(residual, start, 200, active=np.ones(5, dtype=bool))
    assert len(x) == len(f) <= 200
    np.testing.assert_allclose(f, frame_rms(residual(x)))  # every score is the point's own
    assert f.min() < 0.02 * f0  # Gauss-Newton on the whole picture, not a random walk
    assert np.all((x >= 0.0) & (x <= 1.0))
    x, f = polish_point(residual, start, 200, active=np.array([True, True, True, True, False]))
    np.testing.assert_array_equal(x[:, 4], start[4])  # a parameter left out never moves
    assert f.min() < f0


def test_refine_with_polish_spends_its_budget_and_beats_the_evolution_strategy_alone():
    rng = np.random.default_rng(1)
    target, mix = rng.uniform(0.2, 0.8, 5), rng.normal(size=(5, 24))
    residual = _pictures(target, mix)
    score = lambda x: frame_rms(residual(x))  # noqa: E731
    seeds = np.clip(target + rng.normal(0.0, 0.2, (3, 5)), 0.0, 1.0)
    plain = refine(score, seeds, 300, random_state=0)
    polished = refine(score, seeds, 300, random_state=0, residual=residual, polish=0.25)
    again = refine(score, seeds, 300, random_state=0, residual=residual, polish=0.25)
    np.testing.assert_array_equal(polished.tried_unit, again.tried_unit)  # deterministic
    assert polished.n_evals <= 300 + 3 and len(polished.tried_scores) == polished.n_evals - 3  # the seeds were scored here
    assert polished.scores[0] < plain.scores[0]
    np.testing.assert_allclose(polished.scores[0], polished.tried_scores.min())
    with pytest.raises(InputError, match="residual"):
        refine(score, seeds, 300, polish=0.25)


def test_inverter_refine_gains_keeps_k_distinct_candidates_and_counts_renders(tmp_path):
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:toy", n=256, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    inv.attach(f"{TOY}:toy")
    wave = store.waveforms("test")[0]
    plain = inv.invert(Target("waveform", wave, "t"), n=4, draws=8, random_state=0)
    refined = inv.invert(Target("waveform", wave, "t"), n=4, draws=8, random_state=0, refine=240)
    again = inv.invert(Target("waveform", wave, "t"), n=4, draws=8, random_state=0, refine=240)
    np.testing.assert_array_equal(refined.params, again.params)  # same seed, same candidates
    assert len(np.unique(refined.params, axis=0)) == 4
    gaps = np.abs(refined.params_unit[:, None] - refined.params_unit[None]).mean(axis=-1)
    assert gaps[np.triu_indices(4, 1)].min() >= MIN_DISTANCE  # distinct answers, not near-copies of one
    close = inv.invert(Target("waveform", wave, "t"), n=4, draws=8, random_state=0, refine=240, refine_options={"min_distance": 0.0})
    assert close.distances["lsd_db"][-1] <= refined.distances["lsd_db"][-1]  # no distance asked: the best 4 whatever they are
    assert np.all(refined.distances["lsd_db"] <= plain.distances["lsd_db"] + 1e-9)
    assert refined.distances["lsd_db"][0] < plain.distances["lsd_db"][0]
    assert plain.n_renders == 8 and refined.n_renders <= 8 + 240
    alone = inv.invert(Target("waveform", wave, "t"), n=4, draws=8, random_state=0, refine=240, refine_options={"spread": False})
    assert alone.n_renders > 8 + 200  # without the spread's share, the search spends nearly all of the budget
    # the reported distances are the candidates' exact lsd_db
    np.testing.assert_allclose(refined.distances["lsd_db"], lsd_db(refined.target_spectrogram, inv.spectrograms(refined.waveforms)))
    assert refined.to_json()["renders"] == refined.n_renders
    with pytest.raises(InputError, match="refine"):
        inv.invert(Target("waveform", wave, "t"), n=4, draws=8, refine=-1)


def test_synth100_seed_changes_only_the_noise_realisation():
    gen = load_generator("synth100")
    assert takes_seed(gen)
    p = gen.space.from_unit(np.random.default_rng(0).random((3, len(gen.space))))
    default = render_checked(gen, p)
    np.testing.assert_array_equal(default, render_checked(gen, p, seed=None))  # stores keep their bytes
    one, two = render_checked(gen, p, seed=1), render_checked(gen, p, seed=2)
    assert not np.array_equal(one, default) and not np.array_equal(one, two)
    np.testing.assert_array_equal(one, render_checked(gen, p, seed=1))
    with pytest.raises(ParamSpaceError, match="seed"):
        gen.render(p, seed=-1)


def test_function_generator_passes_a_seed_only_when_its_function_takes_one():
    space = ParamSpace([Param("a", 0.0, 1.0)])

    def seeded(params, seed=None):
        rng = np.random.default_rng(seed if seed is not None else 0)
        return (params[:, :1] * rng.standard_normal((len(params), 64))).astype(np.float32)

    gen = FunctionGenerator(space, seeded, sample_rate=8000, n_samples=64, name="s")
    plain = FunctionGenerator(space, lambda p: np.zeros((len(p), 64), np.float32), sample_rate=8000, n_samples=64, name="p")
    assert takes_seed(gen) and not takes_seed(plain)
    x = np.array([[0.5]])
    assert not np.array_equal(gen.render(x, seed=3), gen.render(x))
    with pytest.raises(GeneratorError, match="seed"):
        plain.render(x, seed=3)


def test_refine_keeps_every_point_it_tried():
    f = sphere(np.full(4, 0.2))
    seeds = np.random.default_rng(4).random((2, 4))
    res = refine(f, seeds, budget=2 * 8 * 5, popsize=8, halving=False, random_state=0, seed_scores=f(seeds))
    assert res.tried_unit.shape == (res.n_evals, 4) == (80, 4)
    np.testing.assert_allclose(f(res.tried_unit), res.tried_scores)
    assert res.scores[0] == min(res.tried_scores.min(), f(seeds).min())


def test_distinct_best_keeps_the_best_points_apart():
    unit = np.array([[0.5, 0.5], [0.51, 0.5], [0.9, 0.1], [0.5, 0.52], [0.1, 0.9]])
    scores = np.array([1.0, 1.1, 3.0, 1.2, 2.0])
    np.testing.assert_array_equal(distinct_best(unit, scores, 3), [0, 1, 3])
    # the near-copies of the best point give way to points at least 0.1 apart
    np.testing.assert_array_equal(distinct_best(unit, scores, 3, min_distance=0.1), [0, 4, 2])
    # when too few are far enough apart, the best of the rest make up the number
    np.testing.assert_array_equal(distinct_best(unit, scores, 4, min_distance=0.3), [0, 4, 2, 1])


def test_refine_deadline_is_an_error_not_a_shorter_search():
    with pytest.raises(TimeLimitError, match="time limit"):
        refine(sphere(np.zeros(3)), np.zeros((2, 3)), budget=400, deadline=time.perf_counter() - 1.0)


def test_invert_refuses_a_refinement_the_time_limit_cannot_fit(tmp_path):
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:toy", n=64, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    inv.attach(f"{TOY}:toy")
    target = Target("waveform", store.waveforms("test")[0], "t")
    with pytest.raises(TimeLimitError, match="at most about"):
        inv.invert(target, n=2, draws=8, refine=10**9, time_limit=5.0)
    with pytest.raises(InputError, match="time limit"):
        inv.invert(target, n=2, draws=8, refine=16, time_limit=0.0)
    done = inv.invert(target, n=2, draws=8, refine=16, time_limit=600.0)
    assert done.n_renders > 8


def test_points_the_generator_cannot_render_are_scored_worst_not_fatal():
    """A search may step into a corner where the generator gives NaN: those points lose, the search goes on."""
    rng = np.random.default_rng(2)
    target, mix = np.array([0.69, 0.4, 0.5, 0.6, 0.3]), rng.normal(size=(5, 24))
    smooth = _pictures(target, mix)

    def residual(x):
        out = smooth(x)
        out[x[:, 0] > 0.7] = np.nan  # the generator fails above 0.7 on the first parameter
        return out

    score = lambda x: frame_rms(residual(x))  # noqa: E731
    seeds = np.clip(target + rng.normal(0.0, 0.1, (3, 5)), 0.0, 0.7)
    res = refine(score, seeds, 400, random_state=0, residual=residual, polish=0.25)
    assert np.any(res.tried_scores == FAILED) and np.all(res.tried_unit[res.tried_scores == FAILED][:, 0] > 0.7)
    assert np.all(res.scores < FAILED) and np.all(res.params_unit[:, 0] <= 0.7)
    assert res.scores[0] < score(seeds).min()


def test_inverter_search_steps_around_clips_the_generator_cannot_render(tmp_path):
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:toy", n=256, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    loud = int(np.flatnonzero((store.params("test")[:, 1] > 0.8) & (store.params("test")[:, 1] < 0.9))[0])
    target = Target("waveform", store.waveforms("test")[loud], "loud")
    # nan_late is toy except that clips louder than 0.9 come out NaN; the draws here stay below
    res = inv.invert(target, n=4, draws=8, random_state=0, refine=400, generator=f"{TOY}:nan_late",
                     shortlist=8, refine_options={"sigma": 0.3})
    assert np.isfinite(res.waveforms).all() and np.all(res.params[:, 1] <= 0.9)


def test_an_interrupted_refinement_leaves_the_output_as_it_was(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle of a search: exit 130, the earlier output file unchanged, no temporary file left."""
    import wavinv.inverter
    from wavinv.cli import main
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    store = generate(tmp_path / "store", f"{TOY}:toy", n=64, seed=0, progress=False)
    fit_inverter(store, "prior", "waveform", progress=False).save(tmp_path / "model.joblib")
    np.save(tmp_path / "target.npy", store.waveforms("test")[0])
    out = tmp_path / "c.json"
    out.write_text("an earlier answer")
    before = sorted(p.name for p in tmp_path.iterdir())
    searched = []

    def interrupted(residual):  # the search's score: Ctrl-C arrives during its third generation
        searched.append(1)
        if len(searched) == 3:
            raise KeyboardInterrupt
        return frame_rms(residual)

    monkeypatch.setattr(wavinv.inverter, "frame_rms", interrupted)
    code = main(["invert", "--model", str(tmp_path / "model.joblib"), "--generator", f"{TOY}:toy", "--target", str(tmp_path / "target.npy"),
                 "--n", "2", "--draws", "4", "--refine", "200", "--out", str(out)])
    assert len(searched) == 3 and code == 130 and "interrupted" in capsys.readouterr().err
    assert out.read_text() == "an earlier answer" and sorted(p.name for p in tmp_path.iterdir()) == before


def test_invert_shows_the_search_progress_unless_quiet(tmp_path, capsys):
    """A search of many renders shows a bar on stderr; ``-q`` silences it and leaves the answer the same."""
    from wavinv.cli import main
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    store = generate(tmp_path / "store", f"{TOY}:toy", n=64, seed=0, progress=False)
    fit_inverter(store, "prior", "waveform", progress=False).save(tmp_path / "model.joblib")
    np.save(tmp_path / "target.npy", store.waveforms("test")[0])
    args = ["invert", "--model", str(tmp_path / "model.joblib"), "--generator", f"{TOY}:toy", "--target", str(tmp_path / "target.npy"),
            "--n", "2", "--draws", "4", "--refine", "60"]
    assert main(args + ["--out", str(tmp_path / "a.json")]) == 0
    assert "search" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "b.json"), "-q"]) == 0
    assert "search" not in capsys.readouterr().err
    a, b = (json.loads((tmp_path / f).read_text())["candidates"] for f in ("a.json", "b.json"))
    assert a == b


def test_invert_runs_sets_how_many_draws_the_search_starts_from(tmp_path):
    """``--runs N`` is the refine option ``runs``: N = --n is the default search, fewer starts search otherwise."""
    from wavinv.cli import main
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    store = generate(tmp_path / "store", f"{TOY}:toy", n=64, seed=0, progress=False)
    fit_inverter(store, "prior", "waveform", progress=False).save(tmp_path / "model.joblib")
    np.save(tmp_path / "target.npy", store.waveforms("test")[0])
    args = ["invert", "--model", str(tmp_path / "model.joblib"), "--generator", f"{TOY}:toy", "--target", str(tmp_path / "target.npy"),
            "--n", "2", "--draws", "8", "--refine", "120", "-q"]
    for name, extra in (("default", []), ("two", ["--runs", "2"]), ("one", ["--runs", "1"])):
        assert main(args + extra + ["--out", str(tmp_path / f"{name}.json")]) == 0
    default, two, one = (json.loads((tmp_path / f"{name}.json").read_text())["candidates"] for name in ("default", "two", "one"))
    assert two == default
    assert one != default


def test_a_screen_renders_only_the_proposals_it_predicts_best():
    centre = np.full(10, 0.3)
    f = sphere(centre)
    seen = []

    def counted(x):
        seen.append(len(x))
        return f(x)

    seeds = np.random.default_rng(0).random((4, 10))
    screened = refine(counted, seeds, budget=4 * 14 * 10, popsize=14, sigma=0.1, halving=False, random_state=0,
                      screen=lambda x, anchors: f(x.reshape(-1, 10)).reshape(x.shape[:2]), screen_factor=4)
    assert seen[0] == 4 and set(seen[1:]) == {4 * 14}  # the seeds, then each generation renders one population per run, not four
    plain = refine(f, seeds, budget=4 * 14 * 10, popsize=14, sigma=0.1, halving=False, random_state=0)
    assert screened.n_evals == plain.n_evals
    assert screened.scores[0] < 0.5 * plain.scores[0]  # an exact screen picks the best of four times the proposals
    again = refine(f, seeds, budget=4 * 14 * 10, popsize=14, sigma=0.1, halving=False, random_state=0,
                   screen=lambda x, anchors: f(x.reshape(-1, 10)).reshape(x.shape[:2]), screen_factor=4)
    np.testing.assert_array_equal(screened.params_unit, again.params_unit)
    for bad in (0, 1.5, True, "2", 10**9):
        with pytest.raises(InputError, match="screen_factor"):
            refine(f, seeds, budget=100, screen=lambda x, a: np.zeros(x.shape[:2]), screen_factor=bad)


def test_a_proxy_screens_the_inverters_search_and_other_estimators_ignore_the_option(tmp_path):
    from baselines.proxy import TINY
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:toy", n=256, seed=0, progress=False)
    target = Target("waveform", store.waveforms("test")[0], "t")
    inv = fit_inverter(store, "proxy", "spectrogram", overrides={**TINY, "max_epochs": 20, "hidden": 32})
    inv.attach(f"{TOY}:toy")
    screened = inv.invert(target, n=4, draws=16, random_state=0, refine=240, refine_options={"screen_factor": 3})
    again = inv.invert(target, n=4, draws=16, random_state=0, refine=240, refine_options={"screen_factor": 3})
    plain = inv.invert(target, n=4, draws=16, random_state=0, refine=240, refine_options={"screen_factor": 1})
    np.testing.assert_array_equal(screened.params, again.params)  # same seed, same candidates
    assert "screening_s" in screened.timing and "screening_s" not in plain.timing and screened.n_renders <= 16 + 240
    assert not np.array_equal(screened.params, plain.params)  # the screen chose other proposals to render
    prior = fit_inverter(store, "prior", "spectrogram")
    prior.attach(f"{TOY}:toy")
    alone = prior.invert(target, n=4, draws=8, random_state=0, refine=240)
    asked = prior.invert(target, n=4, draws=8, random_state=0, refine=240, refine_options={"screen_factor": 3})
    np.testing.assert_array_equal(alone.params, asked.params)  # nothing to screen with: the search as it is
    for bad in (0, 2.5, True, "3", 10**9):
        with pytest.raises(InputError, match="screen_factor"):
            inv.invert(target, n=4, draws=16, refine=240, refine_options={"screen_factor": bad})


def test_the_proxys_learnt_rounds_adapt_a_copy_and_repeat_to_the_byte(tmp_path):
    import torch

    from baselines.proxy import TINY
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:toy", n=256, seed=0, progress=False)
    target = Target("waveform", store.waveforms("test")[0], "t")
    inv = fit_inverter(store, "proxy", "spectrogram", overrides={**TINY, "max_epochs": 20, "hidden": 32, "adapt_steps": 20, "adapt_rate": 1e-3})
    inv.attach(f"{TOY}:toy")
    fitted = [p.clone() for p in inv.estimator.proxy_.parameters()]
    adapted = inv.invert(target, n=4, draws=32, random_state=0)
    again = inv.invert(target, n=4, draws=32, random_state=0)
    np.testing.assert_array_equal(adapted.params, again.params)  # each inversion adapts its own copy from the fitted proxy
    assert all(torch.equal(a, b) for a, b in zip(fitted, inv.estimator.proxy_.parameters()))
    inv.estimator.set_params(adapt_steps=0)
    plain = inv.invert(target, n=4, draws=32, random_state=0)
    assert not np.array_equal(adapted.params, plain.params)  # the adapted rounds stepped elsewhere
    assert adapted.n_renders <= 32 and plain.n_renders <= 32  # within the same budget


def test_draws_the_generator_cannot_render_are_no_candidates_and_all_failing_is_one_error(tmp_path):
    from wavinv.errors import RenderError
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "store", f"{TOY}:toy", n=256, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    target = Target("waveform", store.waveforms("test")[0], "t")
    # nan_late gives NaN for loud clips (amp > 0.9): about a tenth of the prior's draws
    res = inv.invert(target, n=4, draws=64, random_state=0, generator=f"{TOY}:nan_late")
    assert np.isfinite(res.waveforms).all() and np.all(res.params[:, 1] <= 0.9) and res.n_renders == 64
    with pytest.raises(RenderError, match="none of the 8 draws"):
        inv.invert(target, n=4, draws=8, random_state=0, generator=f"{TOY}:nan")
