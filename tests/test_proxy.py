"""The proxy search: a learnt forward model moves the nearest training examples towards the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from wavinv.errors import InputError
from wavinv.methods import build_method
from wavinv.models.proxy import ProxySearch


def pictures(y: np.ndarray) -> np.ndarray:
    """A smooth, invertible toy 'generator': three parameters -> an 8 x 8 picture."""
    f = np.linspace(0, 1, 8)[:, None]
    t = np.linspace(0, 1, 8)[None, :]
    a, b, c = (y[:, i, None, None] for i in range(3))
    return (np.sin(3 * a * f + 2 * b * t) + c * f * t + 0.5 * a * b).astype(np.float32)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    y = rng.random((600, 3))
    yt = rng.random((20, 3))
    return pictures(y), y, pictures(yt), yt


def small(**kw) -> ProxySearch:
    base = dict(n_components=16, pool_shape=(8, 8), hidden=64, depth=2, max_epochs=60, batch_size=64,
                learning_rate=3e-3, n_starts=8, steps=60, step_size=0.02, n_threads=1, progress=False)
    return ProxySearch(**{**base, **kw})


def test_search_lands_closer_than_the_nearest_examples(toy):
    X, y, Xt, yt = toy
    est = small().fit(X, y)
    assert est.proxy_error_ < 0.3  # features have unit std: the proxy learnt the forward map
    searched = est.predict(Xt)
    # the starts alone: the same estimator without steps returns the proxy's pick among the neighbours
    looked_up = clone(est).set_params(steps=0).fit(X, y).predict(Xt)
    err = lambda p: np.abs(pictures(p) - Xt).mean()
    assert err(searched) < 0.7 * err(looked_up)


def test_sample_shape_range_and_seed(toy):
    X, y, Xt, _ = toy
    est = small(max_epochs=3).fit(X, y)
    s = est.sample(Xt[:3], 5, random_state=1)
    assert s.shape == (3, 5, 3) and s.min() >= 0 and s.max() <= 1
    assert np.array_equal(s, est.sample(Xt[:3], 5, random_state=1))
    assert np.array_equal(est.sample(Xt[:2], 20, random_state=1), est.sample(Xt[:2], 20, random_state=1))  # more than the starts


def test_same_seed_same_fit(toy):
    X, y, Xt, _ = toy
    a, b = small(max_epochs=2).fit(X, y), small(max_epochs=2).fit(X, y)
    assert np.array_equal(a.predict(Xt), b.predict(Xt))


def test_registered_and_bad_settings(toy):
    X, y, _, _ = toy
    assert isinstance(build_method("proxy"), ProxySearch)
    with pytest.raises(InputError, match="steps"):
        small(steps=-1).fit(X, y)
    with pytest.raises(InputError, match="hidden"):
        small(hidden=0).fit(X, y)


def test_correct_moves_rendered_points_towards_the_target(toy):
    X, y, Xt, yt = toy
    est = small(keep=4, rounds=1, correction_steps=(5, 20)).fit(X, y)
    start = np.random.default_rng(3).random((4, 3))  # far from the target: the proxy's slopes lead back
    moved = est.correct(Xt[:1], start, pictures(start))
    assert moved.shape == (8, 3) and moved.min() >= 0 and moved.max() <= 1
    err = lambda p: np.abs(pictures(p) - Xt[:1]).mean(axis=(1, 2))
    assert err(moved[4:]).mean() < 0.5 * err(start).mean()
    assert est.correction_renders() == 8
    with pytest.raises(InputError, match="one target"):
        est.correct(Xt[:2], start, pictures(start))


def test_adapting_the_proxy_to_a_targets_renders_leads_closer(toy):
    X, y, Xt, yt = toy
    est = small(keep=4, rounds=1, correction_steps=(20,), max_epochs=4).fit(X, y)  # a rough proxy: adapting fixes its errors near the target
    seen = np.clip(yt[:1] + np.random.default_rng(4).normal(0, 0.15, (48, 3)), 0, 1)  # renders around the target, as a search's are
    start = seen[:4]
    before = [p.clone() for p in est.proxy_.parameters()]
    plain = est.correct(Xt[:1], start, pictures(start))
    est.set_params(adapt_steps=100, adapt_rate=3e-3)
    assert np.array_equal(est.correct(Xt[:1], start, pictures(start)), plain)  # nothing seen: nothing to adapt to
    adapted = est.correct(Xt[:1], start, pictures(start), seen=(seen, pictures(seen)))
    assert all(torch.equal(a, b) for a, b in zip(before, est.proxy_.parameters()))  # the fitted proxy is left as it was
    err = lambda p: np.abs(pictures(p) - Xt[:1]).mean()
    assert err(adapted) < err(plain)
    assert np.array_equal(adapted, est.correct(Xt[:1], start, pictures(start), seen=(seen, pictures(seen))))


def test_rounds_sharing_a_memo_reuse_the_seen_features_and_never_stale_ones(toy):
    X, y, Xt, yt = toy
    est = small(keep=4, rounds=1, correction_steps=(5,), max_epochs=2, adapt_steps=3).fit(X, y)
    seen = np.clip(yt[:1] + np.random.default_rng(5).normal(0, 0.15, (24, 3)), 0, 1)
    memo = {}
    for n in (8, 16, 24, 24):  # the inverter's rounds only ever append to what was seen (or see nothing new)
        est.correct(Xt[:1], seen[:4], pictures(seen[:4]), seen=(seen[:n], pictures(seen[:n])), memo=memo)
        np.testing.assert_array_equal(memo["seen"][1], est._features(pictures(seen[:n])))
    points, z = memo["seen"]
    memo["seen"] = (points, z + 100.0)  # marked: what comes back for the seen prefix is the memo's, not pooled again
    grown = est._seen_features(torch.from_numpy(seen.astype(np.float32)), pictures(seen), memo)
    np.testing.assert_array_equal(grown, z + 100.0)
    other = seen[::-1].copy()  # a memo handed other rows: nothing of the old features is kept
    est._seen_features(torch.from_numpy(other.astype(np.float32)), pictures(other), memo)
    np.testing.assert_array_equal(memo["seen"][1], est._features(pictures(other)))


def test_bad_correction_steps(toy):
    X, y, _, _ = toy
    for bad in ((), (30, 10), (0, 5), "ab"):
        with pytest.raises(InputError, match="correction_steps"):
            small(correction_steps=bad).fit(X, y)


@pytest.mark.parametrize("name, bad", [("learning_rate", -1.0), ("learning_rate", "fast"), ("step_size", 0), ("step_size", float("nan")),
                                       ("max_time", -5), ("validation_fraction", 1.0), ("validation_fraction", True), ("n_threads", 0),
                                       ("adapt_steps", -1), ("adapt_steps", 2.5), ("adapt_rate", 0), ("adapt_rate", "slow")])
def test_bad_numbers_are_refused_at_fit(toy, name, bad):
    X, y, _, _ = toy
    with pytest.raises(InputError, match=name):
        small(**{name: bad}).fit(X, y)


def test_features_are_the_reducers_projection(toy):
    X, y, Xt, _ = toy
    est = small(max_epochs=1).fit(X, y)
    np.testing.assert_allclose(est._features(Xt), est.reducer_.transform(Xt) / est.z_scale_, rtol=1e-5, atol=1e-5)


def test_an_ensemble_of_proxies_averages_members_from_other_starts(toy):
    X, y, Xt, yt = toy
    est = small(max_epochs=10, n_proxies=3).fit(X, y)
    assert len(est.proxy_.members) == 3 and np.isfinite(est.proxy_error_)
    z, x = torch.from_numpy(est._features(Xt)), torch.from_numpy(yt.astype(np.float32))
    with torch.no_grad():
        member_sq = [((m(x) - z) ** 2).sum(1).mean().item() for m in est.proxy_.members]
        ensemble_sq = ((est.proxy_(x) - z) ** 2).sum(1).mean().item()
    assert len(set(member_sq)) == 3  # other starting weights, other nets
    assert ensemble_sq < np.mean(member_sq)  # on unseen rows the average errs less than its members do on average
    again = small(max_epochs=10, n_proxies=3).fit(X, y)
    assert np.array_equal(est.sample(Xt[:2], 4, random_state=0), again.sample(Xt[:2], 4, random_state=0))
    with pytest.raises(InputError):
        small(n_proxies=0).fit(X, y)


def test_residual_proxy_learns_the_map_and_refuses_a_non_flag(toy):
    X, y, Xt, _ = toy
    est = small(residual=True).fit(X, y)
    assert any(isinstance(m, torch.nn.LayerNorm) for m in est.proxy_.modules())
    assert est.proxy_error_ < 0.3  # the same bar as the plain MLP's
    again = small(residual=True).fit(X, y)
    assert np.array_equal(est.sample(Xt[:2], 4, random_state=0), again.sample(Xt[:2], 4, random_state=0))
    for bad in ("yes", 1, None):
        with pytest.raises(InputError, match="residual"):
            small(residual=bad).fit(X, y)


def test_screen_predicts_distances_and_takes_away_the_error_seen_at_its_anchor(toy):
    X, y, Xt, yt = toy
    est = small().fit(X, y)
    screen = est.screen(Xt[0])
    points = np.random.default_rng(4).random((1, 40, 3))
    true = np.sqrt(((est.picture_features(pictures(points[0])) - est.picture_features(Xt[:1])) ** 2).sum(1))
    predicted = screen(points, points[:, 0])  # an anchor never rendered: the proxy as it is
    assert predicted.shape == (1, 40)
    assert np.corrcoef(predicted[0], true)[0, 1] > 0.9
    # once the anchor's render is seen, the anchor itself is predicted exactly
    anchor = points[:, 0]
    screen.observe(anchor, pictures(anchor))
    np.testing.assert_allclose(screen(points[:, :1], anchor)[0, 0], true[0], rtol=1e-4, atol=1e-4)
    # a picture that could not be rendered (NaN) is not an anchor: the proxy as it is stands in
    fresh = est.screen(Xt[0])
    fresh.observe(anchor, np.full_like(pictures(anchor), np.nan))
    np.testing.assert_allclose(fresh(points[:, :1], anchor), predicted[:, :1], rtol=1e-6)
    # pictures of another size (the search's every-8th-frame ones) pool to the proxy's grid
    assert est.picture_features(np.repeat(Xt[:2], 2, axis=2)).shape == (2, est.reducer_.n_components_)


def test_a_screen_given_the_learnt_rounds_memo_predicts_through_their_adapted_proxy(toy):
    X, y, Xt, yt = toy
    est = small(keep=4, rounds=1, correction_steps=(5,), max_epochs=4, adapt_steps=100, adapt_rate=3e-3).fit(X, y)
    seen = np.clip(yt[:1] + np.random.default_rng(6).normal(0, 0.15, (48, 3)), 0, 1)
    memo = {}
    est.correct(Xt[:1], seen[:4], pictures(seen[:4]), seen=(seen, pictures(seen)), memo=memo)
    points = np.clip(yt[:1] + np.random.default_rng(7).normal(0, 0.15, (1, 40, 3)), 0, 1)  # proposals near the target
    true = np.sqrt(((est.picture_features(pictures(points[0])) - est.picture_features(Xt[:1])) ** 2).sum(1))
    plain, adapted = est.screen(Xt[0]), est.screen(Xt[0], memo)
    for screen in (plain, adapted):
        screen.observe(points[:, 0], pictures(points[:, 0]))
    plain_err, adapted_err = (np.abs(s(points, points[:, 0])[0] - true).mean() for s in (plain, adapted))
    assert adapted_err < plain_err  # the proxy adapted to the target's renders predicts its search's proposals better
    expected = np.sqrt(((est.forward(points[0], memo["net"]) - est.forward(points[0, :1], memo["net"]) + est.picture_features(pictures(points[0, :1]))
                         - est.picture_features(Xt[:1])) ** 2).sum(1))
    np.testing.assert_allclose(adapted(points, points[:, 0])[0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(est.screen(Xt[0], {})(points, points[:, 0]), est.screen(Xt[0])(points, points[:, 0]))  # no rounds adapted: the proxy as fitted


def test_a_model_saved_without_the_residual_option_loads_as_the_plain_mlp_it_holds(toy):
    import pickle

    X, y, Xt, _ = toy
    est = small(residual=False, max_epochs=1).fit(X, y)
    for name in ("residual", "adapt_steps", "adapt_rate"):
        del est.__dict__[name]  # as a file written before the options existed holds it
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.get_params()["residual"] is False and loaded.get_params()["adapt_steps"] == 0
    assert np.array_equal(loaded.sample(Xt[:1], 2, random_state=0), small(residual=False, max_epochs=1).fit(X, y).sample(Xt[:1], 2, random_state=0))
