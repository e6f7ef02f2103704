"""ParamSpace: conversions both ways, addressable seeded sampling, JSON, fingerprint."""

import json

import numpy as np
import pytest

from wavinv import Param, ParamSpace, ParamSpaceError


@pytest.fixture
def space():
    return ParamSpace(
        [
            Param("cutoff", 100.0, 8000.0, scale="log", unit="Hz"),
            Param("res", 0.0, 1.0),
            Param("voices", 1, 8, scale="int"),
            Param("wave", choices=[0, 1, 2]),
            Param("detune", -50.0, 50.0),
        ]
    )


def test_natural_unit_natural_is_exact_for_every_kind(space):
    x = space.sample(0, 500, seed=1)
    np.testing.assert_allclose(space.from_unit(space.to_unit(x)), x, rtol=1e-12, atol=1e-12)
    u = space.to_unit(x)
    assert u.min() >= 0 and u.max() <= 1


def test_unit_natural_unit_is_exact_for_continuous(space):
    u = np.random.default_rng(0).random((100, len(space)))
    back = space.to_unit(space.from_unit(u))
    cont = [0, 1, 4]
    np.testing.assert_allclose(back[:, cont], u[:, cont], atol=1e-12)
    # discrete parameters come back at the centre of their bin
    assert np.all(np.abs(back[:, 2] - u[:, 2]) <= 0.5 / 8 + 1e-12)


def test_edges_and_scales(space):
    lo = space.from_unit(np.zeros((1, len(space))))[0]
    hi = space.from_unit(np.ones((1, len(space))))[0]
    assert lo.tolist() == [100.0, 0.0, 1.0, 0.0, -50.0]
    np.testing.assert_allclose(hi, [8000.0, 1.0, 8.0, 2.0, 50.0])
    mid = space.from_unit(np.full((1, len(space)), 0.5))[0]
    assert mid[0] == pytest.approx(np.sqrt(100.0 * 8000.0))  # log scale: geometric mean
    # every integer level is reachable with equal probability mass
    levels = space.from_unit(np.column_stack([np.zeros(8)] * 2 + [np.linspace(0.01, 0.99, 8)] + [np.zeros(8)] * 2))[:, 2]
    assert levels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("sampling", ["uniform", "sobol"])
def test_sample_i_depends_only_on_seed_and_i(space, sampling):
    whole = space.sample(0, 256, seed=7, sampling=sampling)
    for start, stop in [(0, 1), (37, 101), (128, 256), (255, 256)]:
        np.testing.assert_array_equal(space.sample(start, stop, seed=7, sampling=sampling), whole[start:stop])
    assert not np.array_equal(space.sample(0, 256, seed=8, sampling=sampling), whole)
    assert space.sample(5, 5, seed=7, sampling=sampling).shape == (0, len(space))


def test_samples_are_in_the_space_and_cover_it(space):
    x = space.validate(space.sample(0, 2000, seed=3))
    u = space.to_unit(x)
    assert np.all(np.abs(u.mean(axis=0) - 0.5) < 0.05)
    assert set(np.unique(x[:, 3])) == {0.0, 1.0, 2.0}


def test_json_round_trip_and_fingerprint(space):
    text = space.dumps()
    again = ParamSpace.from_json(text)
    assert again == space and again.fingerprint == space.fingerprint
    assert ParamSpace.from_json(json.loads(text)) == space
    assert len(space.fingerprint) == 16
    changed = ParamSpace(list(space)[:-1] + [Param("detune", -50.0, 51.0)])
    assert changed.fingerprint != space.fingerprint


def test_dict_views(space):
    x = space.sample(0, 1, seed=0)
    d = space.to_dict(x[0])
    assert list(d) == space.names and isinstance(d["voices"], int)
    np.testing.assert_array_equal(space.from_dict(d), x[0])
    with pytest.raises(ParamSpaceError, match="missing"):
        space.from_dict({"cutoff": 1.0})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="a", low=1.0, high=1.0), "low < high"),
        (dict(name="a", low=0.0, high=1.0, scale="log"), "low > 0"),
        (dict(name="a", low=0.5, high=3, scale="int"), "integer bounds"),
        (dict(name="a", low=0.0, high=1.0, scale="cubic"), "scale"),
        (dict(name="a", choices=[1, 1]), "distinct"),
        (dict(name="", low=0.0, high=1.0), "name"),
    ],
)
def test_bad_params_are_refused(kwargs, match):
    with pytest.raises(ParamSpaceError, match=match):
        Param(**kwargs)


def test_bad_spaces_and_batches_are_refused(space):
    with pytest.raises(ParamSpaceError, match="duplicate"):
        ParamSpace([Param("a", 0.0, 1.0), Param("a", 0.0, 2.0)])
    with pytest.raises(ParamSpaceError, match="shape"):
        space.to_unit(np.zeros((3, 2)))
    with pytest.raises(ParamSpaceError, match="outside"):
        space.validate(np.array([[50.0, 0.5, 2, 1, 0.0]]))
    with pytest.raises(ParamSpaceError, match="not finite"):
        space.validate(np.array([[500.0, np.nan, 2, 1, 0.0]]))
    with pytest.raises(ParamSpaceError, match="sampling must be"):
        space.sample(0, 3, sampling="halton")
    with pytest.raises(ParamSpaceError, match="not valid"):
        ParamSpace.from_json("{nope")
