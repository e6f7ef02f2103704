"""Feature caches and stores without waveforms: same bytes every way, same fits, refusals, verify and repair."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from wavinv import StoreError, open_store
from wavinv.cli import main
from wavinv.generate import cache_features, generate
from wavinv.inverter import fit_inverter
from wavinv.pictures import store_spectrograms
from wavinv.store import FeatureCache
from wavinv.verify import verify

HERE = Path(__file__).parent
TOY = f"{HERE / 'toygen.py'}:toy"
KNN = {"n_components": 4, "n_neighbors": 3}


def files(path: Path, sub: str = "") -> dict[str, str]:
    """sha256 of every file under ``path/sub``."""
    root = path / sub
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()}


def pooled_files(path: Path) -> dict[str, str]:
    """The cached rows' files (not the records, which name the data chunk they were computed from)."""
    return {k: v for k, v in files(path, "features").items() if "/pooled/" in k}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """70 toy clips in chunks of 16, four ways: plain, with a cache, without waveforms, plain + ``cache_features`` afterwards."""
    root = tmp_path_factory.mktemp("cache")
    out = {name: root / name for name in ("plain", "cached", "nowave", "added")}
    generate(out["plain"], TOY, 70, seed=3, chunk=16, progress=False)
    generate(out["cached"], TOY, 70, seed=3, chunk=16, progress=False, cache_features=True)
    generate(out["nowave"], TOY, 70, seed=3, chunk=16, progress=False, waveforms=False)
    generate(out["added"], TOY, 70, seed=3, chunk=16, progress=False)
    before = files(out["added"])
    cache_features(out["added"], progress=False)
    assert {k: v for k, v in files(out["added"]).items() if not k.startswith("features/")} == before  # every data file as it was
    return out


def test_default_stores_have_no_cache_and_their_old_layout(stores):
    s = open_store(stores["plain"])
    assert s.keeps_waveforms and s.meta["format_version"] == 1 and not s.feature_caches()
    assert "waveforms" not in s.meta and not (stores["plain"] / "features").exists()
    # adding a cache leaves every array file as it was (zarr.json differs by its creation time only)
    same = {k: v for k, v in files(stores["added"]).items() if not k.startswith("features/") and k != "zarr.json"}
    assert same == {k: v for k, v in files(stores["plain"]).items() if k != "zarr.json"}


def test_the_cache_has_the_same_bytes_however_it_is_made(stores, tmp_path):
    ref = files(stores["cached"], "features")
    assert ref and files(stores["added"], "features") == ref
    assert pooled_files(stores["nowave"]) == pooled_files(stores["cached"])
    generate(tmp_path / "w2", TOY, 70, seed=3, chunk=16, workers=2, progress=False, cache_features=True)
    assert files(tmp_path / "w2", "features") == ref


def test_an_interrupted_cache_resumes_to_the_same_bytes(stores, tmp_path, monkeypatch):
    out = tmp_path / "s"
    generate(out, TOY, 70, seed=3, chunk=16, progress=False)
    real, calls = FeatureCache.write_chunk, []

    def dies_on_third(cache, k, pooled, data_record):  # Ctrl-C before the third chunk's rows are written
        calls.append(k)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cache, k, pooled, data_record)

    monkeypatch.setattr(FeatureCache, "write_chunk", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        cache_features(out, progress=False)
    monkeypatch.undo()
    s = open_store(out)
    (cache,) = s.feature_caches().values()
    assert cache.current().tolist() == [True, True, False, False, False]
    assert s.feature_cache(cache.picture, cache.grid) is None  # an unfinished cache is never read
    assert not verify(out, progress=False).problems  # only a note: fits compute their features meanwhile
    cache_features(out, progress=False)
    assert files(out, "features") == files(stores["cached"], "features")


def test_growing_a_store_grows_its_cache(stores, tmp_path):
    out = tmp_path / "grown"
    generate(out, TOY, 40, seed=3, chunk=16, progress=False, cache_features=True)
    generate(out, TOY, 70, seed=3, chunk=16, progress=False)  # the cache it holds is kept whole
    assert files(out, "features") == files(stores["cached"], "features")


def fit_knn(path: Path, **kw):
    return fit_inverter(open_store(path), "knn", overrides=KNN, progress=False, **kw)


def test_a_fit_from_the_cache_is_the_fit_from_spectrograms(stores):
    plain, cached, nowave = (fit_knn(stores[k]) for k in ("plain", "cached", "nowave"))
    X = store_spectrograms(open_store(stores["plain"]), "test")[:]
    for inv in (cached, nowave):
        np.testing.assert_array_equal(inv.estimator.reducer_.pca_.components_, plain.estimator.reducer_.pca_.components_)
        np.testing.assert_array_equal(inv.estimator.predict(X), plain.estimator.predict(X))
        assert {k: v for k, v in inv.validation.items() if k != "fit_s"} == {k: v for k, v in plain.validation.items() if k != "fit_s"}


def test_a_cache_of_another_grid_or_picture_is_not_used(stores, tmp_path, monkeypatch):
    s = open_store(stores["cached"])
    (cache,) = s.feature_caches().values()
    assert s.feature_cache(cache.picture, (32, 32)) is None
    assert s.feature_cache({**cache.picture, "amin": 1e-4}, cache.grid) is None
    # a 32 x 32 fit on a store with a 64 x 64 cache computes its spectrograms, and gets the plain fit
    a = fit_inverter(s, "knn", overrides={**KNN, "pool_shape": (32, 32)}, progress=False)
    b = fit_inverter(open_store(stores["plain"]), "knn", overrides={**KNN, "pool_shape": (32, 32)}, progress=False)
    np.testing.assert_array_equal(a.estimator.reducer_.pca_.components_, b.estimator.reducer_.pca_.components_)
    # without waveforms there is nothing to compute them from: a clear refusal naming the command that builds it
    with pytest.raises(StoreError, match=r"keeps no waveforms and has no complete feature cache .* pooled to 32x32.*wavinv cache .* --pool 32x32"):
        fit_inverter(open_store(stores["nowave"]), "knn", overrides={**KNN, "pool_shape": (32, 32)}, progress=False)


def test_a_store_without_waveforms_re_renders_its_clips(stores):
    s, plain = open_store(stores["nowave"]), open_store(stores["plain"])
    assert not s.keeps_waveforms and s.meta["format_version"] == 2 and not (stores["nowave"] / "waveform").exists()
    # a generator that is not built in is never imported on the store's word
    with pytest.raises(StoreError, match="keeps no waveforms.*name it with --generator"):
        s.waveforms()[0]
    s.attach(TOY)
    np.testing.assert_array_equal(s.waveforms("test")[:], plain.waveforms("test")[:])
    np.testing.assert_array_equal(store_spectrograms(s, "val")[[0, 2]], store_spectrograms(plain, "val")[[0, 2]])
    ids, X, y = next(s.batches("train", batch_size=5, shuffle=True, seed=1))
    np.testing.assert_array_equal(X, plain.waveforms()[ids])
    assert s.summary()["waveforms"] is False and "--no-waveforms" in s.repair_command()
    rep = verify(stores["nowave"], rerender=6, generator=TOY, seed=0, progress=False)
    assert rep.ok and len(rep.rerendered) == 6 and rep.max_abs_error <= 0.01


def test_resuming_needs_the_same_waveforms_flag(stores):
    with pytest.raises(StoreError, match="keeps no waveforms: add --no-waveforms"):
        generate(stores["nowave"], TOY, 70, seed=3, chunk=16, progress=False)
    with pytest.raises(StoreError, match="keeps waveforms: leave out --no-waveforms"):
        generate(stores["plain"], TOY, 70, seed=3, chunk=16, progress=False, waveforms=False)


def test_verify_finds_a_damaged_cache_chunk_and_cache_repairs_it(stores, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(stores["nowave"], out)
    (chunk,) = [p for p in out.glob("features/*/pooled/c/2/0")]
    raw = bytearray(chunk.read_bytes())
    raw[40] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    rep = verify(out, progress=False)
    assert not rep.ok and any("chunks 2 are damaged" in p and "wavinv cache" in p for p in rep.problems)
    with pytest.raises(StoreError, match="cannot be read.*repair with `wavinv cache"):
        fit_knn(out)
    cache_features(out, generator=TOY, progress=False)
    assert verify(out, progress=False).ok and files(out) == files(stores["nowave"])


def test_cli_generate_cache_info_and_refusals(stores, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["generate", "--generator", TOY, "--n", "40", "--chunk", "8", "--out", str(out), "--no-waveforms", "-q"]) == 0
    assert main(["cache", str(out), "--pool", "16x8", "--generator", TOY, "-q"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["waveforms"] is False and sorted(c["grid"] for c in info["feature_caches"]) == [[16, 8], [64, 64]]
    assert all(c["chunks_current"] == 5 for c in info["feature_caches"])
    before = files(tmp_path)
    model = tmp_path / "m.joblib"
    # a pool shape the store has no cache of, on a store without waveforms: one line, exit 2, nothing written
    code = main(["fit", "--store", str(out), "--method", "knn", "--set", "pool_shape=[32,32]", "--out", str(model), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "wavinv cache" in err and "Traceback" not in err
    for argv in (["cache", str(out)], ["cache", str(out), "--pool", "0x8"], ["cache", str(tmp_path / "nothing")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert files(tmp_path) == before
    # a fit that matches the cache needs no generator, even though the clips are gone
    assert main(["fit", "--store", str(out), "--method", "knn", "--set", "n_components=4", "--out", str(model)]) == 0


def test_verify_rerender_says_when_there_is_no_cache_to_compare_with(stores, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(stores["nowave"], out)
    (record,) = out.glob("features/*/complete/c/1/0")
    record.unlink()  # chunk 1 of the only cache is no longer recorded
    rep = verify(out, rerender=3, generator=TOY, seed=0, progress=False)
    assert any("only their parameters were compared" in n for n in rep.notes)
    assert any("1 of 5 chunks not computed" in p for p in rep.problems)  # without waveforms, an unfinished cache is a problem
