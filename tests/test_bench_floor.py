"""The same-sound floor (``wavinv.floor``) and the bench's targets from outside the store.

A generator whose default render repeats its noise gets its own render as the
floor (a search next to the truth would go below another seed); one whose noise
follows the patch keeps another seed. Targets drawn from the prior, or rendered
with another noise seed, are other targets: their results are never mixed with
the test split's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wavinv import FunctionGenerator
from wavinv.bench import bench
from wavinv.bench.targets import pick_targets
from wavinv.cli import main
from wavinv.errors import InputError
from wavinv.floor import FLOOR_SEED, OTHER_SEED, OWN_RENDER, probe_floor
from wavinv.frontend import Spectrogram, spectrogram
from wavinv.generate import generate
from wavinv.generators import render_checked
from wavinv.inverter import fit_inverter
from wavinv.metrics import lsd_db
from wavinv.page import inversion_section
from wavinv.targets import Target

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import toygen  # noqa: E402

SETTINGS = {"profile": "test", "methods": "prior", "inputs": "spectrogram", "progress": False}
# a generator whose seed reaches nothing: another seed "changes nothing"
deaf = FunctionGenerator(toygen.SPACE, lambda params, seed=None: toygen.render_clips(params), sample_rate=8000, n_samples=toygen.N_SAMPLES, name="deaf")


def spec(name: str) -> str:
    return f"{ROOT / 'tests' / 'toygen.py'}:{name}"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return {name: generate(root / name, spec(name), 60, progress=False) for name in ("fixed_noise", "patch_noise", "toy")}


def probe(gen, n: int = 8, target_seed=None) -> dict:
    fe = Spectrogram(sample_rate=gen.sample_rate, n_samples=gen.n_samples, n_freq=64, n_frames=32)
    params = gen.space.from_unit(np.random.default_rng(0).random((n, len(gen.space))))
    targets = spectrogram(render_checked(gen, params, seed=target_seed), fe)
    return probe_floor(gen, params, lambda waves: lsd_db(targets, spectrogram(waves, fe)), target_seed)


def test_the_probe_picks_the_floor_that_means_the_same_sound():
    fixed, patch, plain, same = probe(toygen.fixed_noise), probe(toygen.patch_noise), probe(toygen.toy), probe(deaf)
    # a fixed noise table: a patch next to the truth has the target's very noise, another seed does not
    assert fixed["kind"] == OWN_RENDER and fixed["seed"] is None and fixed["nearby_closer"] == 8
    assert max(fixed["nearby"]) < 1.0 < 3.0 < min(fixed["other_seed"])
    # noise hashed from the patch: moved by 1e-6, it is other noise, as another seed's is
    assert patch["kind"] == OTHER_SEED and patch["seed"] == FLOOR_SEED and patch["nearby_closer"] == 0
    assert plain["kind"] == OWN_RENDER and plain["other_seed"] is None and "takes no noise seed" in plain["reason"]
    assert same["kind"] == OWN_RENDER and "changes nothing" in same["reason"]
    # targets rendered with another seed than the default: no patch reproduces that noise, and the
    # other-seed floor avoids the targets' own seed
    moved = probe(toygen.fixed_noise, target_seed=FLOOR_SEED)
    assert moved["kind"] == OTHER_SEED and moved["seed"] == FLOOR_SEED + 1


def test_a_fixed_noise_generator_gets_its_own_render_as_floor_and_no_gap_above_1(stores, tmp_path):
    res = bench(stores["fixed_noise"], tmp_path / "out", generator=spec("fixed_noise"), refine=40, **SETTINGS)
    floor = res.meta["floor"]
    assert floor["kind"] == OWN_RENDER and floor == json.loads((tmp_path / "out" / "evals" / "floor.json").read_text())["probe"]
    rows = {r["method"]: r for r in res.rows}
    assert rows["floor"]["lsd_db_best"] == 0.0  # the targets are the store's default renders
    assert all(r["below_floor"] == 0 and r["gap_closed"] <= 1.0 for r in res.rows)
    # the accident this avoids: the search scores below what another seed would have called the floor
    assert rows["cma-search"]["lsd_db_best"] < float(np.mean(floor["other_seed"]))
    md = res.markdown()
    assert "The floor is the true parameters' own render (0 dB where the target is their default render): parameters next to" in md
    assert "†" not in md
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["meta"]["floor"] == floor and saved["meta"]["settings"]["targets_from"] == "test"


def test_a_patch_noise_generator_keeps_another_seed(stores, tmp_path):
    res = bench(stores["patch_noise"], tmp_path / "out", generator=spec("patch_noise"), **SETTINGS)
    assert res.meta["floor"]["kind"] == OTHER_SEED and res.rows[-1]["lsd_db_best"] > 1.0
    assert "The floor is the true parameters re-rendered with another noise seed: parameters next to the truth do not" in res.markdown()
    assert "floor: the true parameters re-rendered with another noise seed" in (tmp_path / "out" / "report.html").read_text()


def test_a_generator_without_a_seed_gets_a_floor_row_too(stores, tmp_path):
    res = bench(stores["toy"], tmp_path / "out", generator=spec("toy"), **SETTINGS)
    assert [r["method"] for r in res.rows] == ["prior", "floor"] and res.rows[-1]["lsd_db_best"] == 0.0
    assert res.meta["floor"]["reason"] == "the generator takes no noise seed"


def test_rows_below_the_floor_are_counted_and_marked(stores, tmp_path, monkeypatch):
    # another seed as the floor of a fixed-noise generator (the rule before the probe): the search goes below it
    import wavinv.bench.floor as bench_floor

    def another_seed(gen, params, distance, target_seed=None):
        return {**probe_floor(gen, params, distance, target_seed), "kind": OTHER_SEED, "seed": FLOOR_SEED}

    monkeypatch.setattr(bench_floor, "probe_floor", another_seed)
    res = bench(stores["fixed_noise"], tmp_path / "out", generator=spec("fixed_noise"), refine=40, **SETTINGS)
    below = {r["method"]: r["below_floor"] for r in res.rows}
    assert below["floor"] == 0 and below["cma-search"] >= 1
    md = res.markdown()
    assert "| cma-search †" in md and f"cma-search {below['cma-search']} of 3" in md and "own gap closed exceeds 1" in md


def test_prior_targets_come_from_outside_the_store_and_are_deterministic(stores, tmp_path):
    store, gen = stores["patch_noise"], toygen.patch_noise
    three = pick_targets(store, gen, "prior", None, 3, 0)
    again, five = pick_targets(store, gen, "prior", None, 3, 0), pick_targets(store, gen, "prior", None, 5, 0)
    np.testing.assert_array_equal(three.waves, again.waves)
    np.testing.assert_array_equal(three.params, five.params[:3])  # more targets later keep the first ones
    assert not (three.params[:, None, :] == store.params()[None]).all(axis=2).any()  # none is a store row
    np.testing.assert_array_equal(three.waves, render_checked(gen, three.params))
    assert not np.array_equal(pick_targets(store, gen, "prior", None, 3, 1).params, three.params)

    out = tmp_path / "out"
    test_run = bench(store, out, generator=spec("patch_noise"), **SETTINGS)
    prior_run = bench(store, out, generator=spec("patch_noise"), targets_from="prior", **SETTINGS)
    assert prior_run.evaluated == ["prior-spectrogram"]  # the test split's results are not reused for other targets
    assert prior_run.meta["target_ids"] == [0, 1, 2] and "--targets-from prior" in prior_run.meta["command"]
    assert prior_run.meta["targets"] == "3 drawn from the parameter prior, outside the store, each its default render"
    assert prior_run.rows[0]["lsd_db_best"] != test_run.rows[0]["lsd_db_best"]
    assert "prior draw 0" in (out / "report.html").read_text()
    assert bench(store, out, generator=spec("patch_noise"), targets_from="prior", **SETTINGS).evaluated == []  # resumes


def test_a_target_noise_seed_renders_other_targets_and_moves_the_floor(stores, tmp_path):
    store = stores["fixed_noise"]
    seeded = pick_targets(store, toygen.fixed_noise, "test", 5, 3, 0)
    plain = pick_targets(store, toygen.fixed_noise, "test", None, 3, 0)
    np.testing.assert_array_equal(seeded.ids, plain.ids)
    np.testing.assert_array_equal(seeded.waves, render_checked(toygen.fixed_noise, plain.params, seed=5))
    assert not np.array_equal(seeded.waves, plain.waves)
    res = bench(store, tmp_path / "out", generator=spec("fixed_noise"), target_noise_seed=5, **SETTINGS)
    # no patch reproduces seed 5's noise: another seed is the floor again
    assert res.meta["floor"]["kind"] == OTHER_SEED and res.meta["floor"]["target_seed"] == 5
    assert res.meta["settings"]["target_noise_seed"] == 5 and "--target-noise-seed 5" in res.meta["command"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target-noise-seed", "3"], "takes no noise seed"),
        (["--targets-from", "train"], "--targets-from 'train': expected test or prior"),
        (["--target-noise-seed", "-1"], "must be >= 0"),
    ],
)
def test_bad_target_options_are_one_line_exit_2_and_write_nothing(stores, tmp_path, capsys, extra, message):
    argv = ["bench", "--store", str(stores["toy"].path), "--out", str(tmp_path / "o"), "--generator", spec("toy"), "--profile", "test", "-q"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError):
        bench(stores["toy"], tmp_path / "o", generator=spec("toy"), target_noise_seed=3, **SETTINGS)
    assert not (tmp_path / "o").exists()


def test_run_py_refuses_a_noise_seed_for_a_generator_without_one_before_building_a_store(tmp_path):
    args = ["--generator", spec("toy"), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "bench"), "--target-noise-seed", "2"]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "takes no noise seed" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, kind", [("fixed_noise", OWN_RENDER), ("patch_noise", OTHER_SEED)])
def test_the_report_pages_floor_follows_the_same_rule(stores, name, kind):
    store = stores[name]
    inv = fit_inverter(store, "knn", "spectrogram", overrides={"n_neighbors": 3, "n_components": 4}, generator=spec(name))
    inv.attach(spec(name))
    result = inv.invert(Target("waveform", store.waveforms("test")[0], "t"), n=2, draws=4, random_state=0)
    inv.chance_level(result, random_state=0)
    floor = inv.floor_level(result, store.params("test")[0])
    assert floor["kind"] == kind and floor["probe_targets"] == 1
    assert (floor["lsd_db"] == 0.0) == (kind == OWN_RENDER)
    section = inversion_section(result, truth=store.params("test")[0], floor=floor)
    label = "own render" if kind == OWN_RENDER else "re-rendered with another noise seed"
    assert any(r.kind == "floor" and label in r.label and r.lsd_db == floor["lsd_db"] for r in section.scale)
