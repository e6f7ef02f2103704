"""The dataset store from Python: layout, determinism, resume, growth, refusals, verify, reading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import wavinv.generate as generate_mod
from wavinv import InputError, RenderError, StoreError, open_store
from wavinv.errors import GeneratorError
from wavinv.generate import generate, render_chunk
from wavinv.store import SPLITS, Store, chunk_digest, split_of, writer_lock
from wavinv.location import Location
from wavinv.verify import verify

import toygen  # tests/toygen.py: pytest puts tests/ on sys.path

HERE = Path(__file__).parent
TOY = f"{HERE / 'toygen.py'}:toy"


def spec(name: str) -> str:
    return f"{HERE / 'toygen.py'}:{name}"


def tree(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path``."""
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.rglob("*")) if f.is_file()}


def array_tree(path: Path) -> dict[str, str]:
    """sha256 of every array file: everything but the group's zarr.json (creation time, spec)."""
    return {k: v for k, v in tree(path).items() if k != "zarr.json"}


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    """An uninterrupted reference: 70 toy samples in chunks of 16 (the last one partial)."""
    out = tmp_path_factory.mktemp("ref") / "store"
    generate(out, TOY, 70, seed=3, chunk=16, progress=False)
    return out


def test_layout_attributes_and_contents(ref):
    s = open_store(ref)
    assert (s.n, s.seed, s.sampling, s.chunk, s.n_chunks) == (70, 3, "uniform", 16, 5)
    g = s.group
    assert g["id"].dtype == np.int64 and g["id"].shape == (70,)
    assert g["params"].shape == g["params_unit"].shape == (70, 3)
    assert g["waveform"].dtype == np.float32 and g["waveform"].shape == (70, 1024) and g["waveform"].chunks == (16, 1024)
    codecs = [type(c).__name__ for c in g["waveform"].compressors]
    assert codecs == ["BloscCodec", "Crc32cCodec"]
    blosc = g["waveform"].compressors[0]
    assert blosc.cname.value == "lz4" and blosc.shuffle.value == "shuffle"
    meta = dict(g.attrs["wavinv"])
    for key in ("generator", "seed", "method", "sample_rate", "clip_seconds", "frontend", "wavinv_version", "created", "n", "chunk"):
        assert key in meta, key
    assert meta["generator"]["name"] == "toy" and meta["generator"]["spec"] == TOY
    assert meta["generator"]["fingerprint"] == toygen.SPACE.fingerprint and s.space == toygen.SPACE
    assert meta["clip_seconds"] == pytest.approx(1024 / 8000)
    assert s.frontend_config["n_samples"] == 1024 and s.frontend_config["sample_rate"] == 8000
    # ids link params and audio: every row re-renders from its own params
    np.testing.assert_array_equal(s.ids(), np.arange(70))
    params = s.params()
    np.testing.assert_array_equal(params, toygen.SPACE.sample(0, 70, seed=3))
    np.testing.assert_array_equal(s.params_unit(), toygen.SPACE.to_unit(params))
    np.testing.assert_array_equal(s.waveforms()[:], toygen.toy.render(params))
    assert s.is_complete and verify(ref, progress=False).ok


def test_workers_give_identical_bytes(ref, tmp_path):
    out = tmp_path / "w2"
    generate(out, TOY, 70, seed=3, chunk=16, workers=2, progress=False)
    assert array_tree(out) == array_tree(ref)


def test_resume_after_interruption_gives_identical_bytes(ref, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    calls = []
    render = generate_mod.rendered_chunk

    def interrupted(store, gen, k, plan):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(k)
        return render(store, gen, k, plan)

    monkeypatch.setattr(generate_mod, "rendered_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(out, TOY, 70, seed=3, chunk=16, progress=False)
    monkeypatch.undo()
    s = open_store(out)
    assert s.completed().tolist() == [True, True, False, False, False] and not s.is_complete
    with pytest.raises(StoreError, match="incomplete"):
        s.waveforms()
    # a chunk in flight when killed: data written, record not; and a temp file left behind
    render_chunk(str(out), toygen.toy, 2)
    Store(out, mode="r+").arrays["complete"][2] = np.uint64(0)
    (out / "waveform" / "c" / "3").mkdir(parents=True, exist_ok=True)
    (out / "waveform" / "c" / "3" / "0.deadbeef.partial").write_bytes(b"half a chunk")
    rendered = []
    monkeypatch.setattr(generate_mod, "rendered_chunk", lambda store, g, k, plan: rendered.append(k) or render(store, g, k, plan))
    generate(out, TOY, 70, seed=3, progress=False)
    assert rendered == [2, 3, 4]  # only the missing chunks
    assert array_tree(out) == array_tree(ref)
    rendered.clear()
    generate(out, TOY, 70, seed=3, progress=False)  # complete: nothing to do
    assert rendered == []


def test_growing_appends_and_matches_a_fresh_store(ref, tmp_path):
    out = tmp_path / "grown"
    generate(out, TOY, 40, seed=3, chunk=16, progress=False)
    train40 = open_store(out).ids("train")
    generate(out, TOY, 70, seed=3, progress=False)
    assert array_tree(out) == array_tree(ref)
    s = open_store(out)
    assert s.n == 70 and np.isin(train40, s.ids("train")).all()


REFUSED = [
    (dict(generator=spec("other")), StoreError, "was made by generator 'toy'"),
    (dict(generator=spec("other_space")), StoreError, "space"),
    (dict(generator=spec("newer")), StoreError, "v1"),
    (dict(seed=4), StoreError, "seed 3"),
    (dict(sampling="sobol"), StoreError, "sampling"),
    (dict(chunk=8), StoreError, "chunks of 16"),
    (dict(n=69), StoreError, "only grows"),
    (dict(n=0), InputError, "n must be"),
    (dict(workers=0), InputError, "workers"),
    (dict(generator="no_such_generator"), GeneratorError, "unknown generator"),
    (dict(generator=spec("nan"), n=90), RenderError, "NaN"),
    (dict(generator=spec("bad_shape"), n=90), RenderError, "shape"),
]


@pytest.mark.parametrize("change, error, message", REFUSED, ids=[str(c) for c, _, _ in REFUSED])
def test_refused_runs_leave_the_store_exactly_as_it_was(ref, change, error, message):
    before = tree(ref)
    args = dict(generator=TOY, n=70, seed=3, sampling="uniform", chunk=None, workers=1) | change
    with pytest.raises(error, match=message):
        generate(ref, args.pop("generator"), args.pop("n"), progress=False, **args)
    assert tree(ref) == before


@pytest.mark.parametrize("name, error", [("nan", RenderError), ("bad_shape", RenderError), ("toy", InputError)])
def test_bad_input_for_a_new_store_creates_nothing(tmp_path, name, error):
    out = tmp_path / "new"
    with pytest.raises(error):
        generate(out, spec(name), -1 if name == "toy" else 10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_paths_that_cannot_hold_a_store(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        generate(tmp_path / "file" / "store", TOY, 10, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    before = tree(foreign)
    with pytest.raises(StoreError, match="not a wavinv store"):
        generate(foreign, TOY, 10, progress=False)
    assert tree(foreign) == before
    with pytest.raises(StoreError, match="not a wavinv store"):
        open_store(foreign)
    # an empty directory is fine
    (tmp_path / "empty").mkdir()
    assert generate(tmp_path / "empty", TOY, 5, progress=False).is_complete


def test_generator_object_runs_in_process_only(tmp_path):
    with pytest.raises(InputError, match="spec"):
        generate(tmp_path / "s", toygen.toy, 10, workers=2, progress=False)
    s = generate(tmp_path / "s", toygen.toy, 10, chunk=4, progress=False)
    assert s.generator["spec"] is None and s.is_complete


def test_nan_in_a_later_chunk_keeps_finished_chunks(tmp_path):
    out = tmp_path / "s"
    u = toygen.SPACE.sample(0, 64, seed=0)
    first_bad = int(np.argmax(u[:, 1] > 0.9))
    with pytest.raises(RenderError, match=f"sample {first_bad} contains NaN"):
        generate(out, spec("nan_late"), 64, chunk=8, progress=False)
    s = open_store(out)
    assert s.completed()[: first_bad // 8].all() and not s.completed()[first_bad // 8]
    rep = verify(out, progress=False)
    assert not rep.ok and any("not complete" in p for p in rep.problems)


def test_concurrent_writer_is_refused(ref):
    with writer_lock(Location(ref)):
        with pytest.raises(StoreError, match="another wavinv command"):
            generate(ref, TOY, 70, seed=3, progress=False)


# -- verify -----------------------------------------------------------------------------
@pytest.fixture
def copy(ref, tmp_path) -> Path:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(ref, out)
    return out


def test_verify_catches_a_flipped_byte(copy):
    f = copy / "waveform" / "c" / "2" / "0"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))
    rep = verify(copy, progress=False)
    assert not rep.ok
    assert any("chunk 2" in p and "damaged" in p for p in rep.problems), rep.problems
    with pytest.raises(StoreError, match="cannot be read"):
        open_store(copy).waveforms()[40]


def test_verify_catches_a_missing_chunk(copy):
    (copy / "params" / "c" / "1" / "0").unlink()
    rep = verify(copy, progress=False)
    assert any("chunk 1" in p and "missing" in p for p in rep.problems), rep.problems


def test_verify_catches_a_wrong_completion_record(copy):
    s = open_store(copy)
    s2 = Store(copy, mode="r+")
    s2.arrays["complete"][3] = np.uint64(12345)
    rep = verify(copy, progress=False)
    assert rep.problems == ["chunk 3 (samples 48..63): data does not match its completion record"]
    s2.arrays["complete"][3] = np.uint64(0)
    rep = verify(copy, progress=False)
    assert rep.problems == ["1 of 5 chunks not complete (chunks 3): run `wavinv generate` again to finish"]
    assert not s.is_complete


def test_a_damaged_completion_record_is_reported_and_redone(copy, ref):
    f = copy / "complete" / "c" / "2"
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    assert verify(copy, progress=False).problems == ["chunk 2: completion record cannot be read (checksum mismatch)"]
    generate(copy, TOY, 70, seed=3, progress=False)
    assert verify(copy, progress=False).ok and array_tree(copy) == array_tree(ref)


def test_verify_catches_wrong_ids(copy):
    s = Store(copy, mode="r+")
    s.arrays["id"][16:32] = np.arange(16)  # chunk 1 claims the ids of chunk 0
    data = [s.arrays[a][16:32] for a in ("id", "params", "params_unit", "waveform")]
    s.arrays["complete"][1] = np.uint64(chunk_digest(*data))  # and its record agrees
    rep = verify(copy, progress=False)
    assert len(rep.problems) == 1 and "missing ids 16..31; repeated ids 0..15" in rep.problems[0]


def test_verify_rerender_catches_consistent_but_wrong_audio(copy):
    assert verify(copy, rerender=5, seed=0, generator=TOY, progress=False).max_abs_error == 0.0
    s = Store(copy, mode="r+")
    wave = s.arrays["waveform"][0:16]
    wave[7] *= 0.5  # different audio, with a record that matches it
    s.arrays["waveform"][0:16] = wave
    data = [s.arrays[a][0:16] for a in ("id", "params", "params_unit")] + [wave]
    s.arrays["complete"][0] = np.uint64(chunk_digest(*data))
    assert verify(copy, progress=False).ok
    rep = verify(copy, rerender=70, seed=0, generator=TOY, progress=False)
    assert rep.problems == [f"re-rendered samples differ from the stored ones: ids 7 (max abs error {rep.max_abs_error:.3g})"]


def test_verify_rerender_needs_a_generator_when_none_is_recorded(tmp_path):
    generate(tmp_path / "s", toygen.toy, 6, chunk=4, progress=False)
    with pytest.raises(StoreError, match="no generator spec"):
        verify(tmp_path / "s", rerender=2, progress=False)
    assert verify(tmp_path / "s", rerender=2, generator=TOY, progress=False).ok
    with pytest.raises(StoreError, match="not 'other'"):
        verify(tmp_path / "s", rerender=2, generator=spec("other"), progress=False)


# -- reading ----------------------------------------------------------------------------
def test_splits_are_a_stable_hash_of_the_id():
    ids = np.arange(200_000)
    s = split_of(ids)
    fractions = np.bincount(s, minlength=3) / len(ids)
    np.testing.assert_allclose(fractions, [hi - lo for lo, hi in SPLITS.values()], atol=0.005)
    np.testing.assert_array_equal(split_of(ids[:1000]), s[:1000])  # a smaller store agrees
    np.testing.assert_array_equal(split_of(ids[::-1]), s[::-1])  # order does not matter


def test_split_reads(ref):
    s = open_store(ref)
    parts = {name: s.split_indices(name) for name in SPLITS}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(70))
    for name, idx in parts.items():
        np.testing.assert_array_equal(s.ids(name), idx)
        np.testing.assert_array_equal(s.params_unit(name), s.params_unit()[idx])
        w = s.waveforms(name)
        assert w.shape == (len(idx), 1024)
        np.testing.assert_array_equal(w[::-1], s.group["waveform"][:][idx][::-1])
    with pytest.raises(InputError, match="split"):
        s.split_indices("training")


def test_batches_cover_the_split_once_with_bounded_batches(ref):
    s = open_store(ref)
    train = s.split_indices("train")
    seen = []
    for shuffle, seed in ((False, 0), (True, 0), (True, 0), (True, 1)):
        got = []
        for ids, X, y in s.batches("train", batch_size=7, shuffle=shuffle, seed=seed, window=2):
            assert len(ids) <= 7 and X.shape == (len(ids), 1024) and y.shape == (len(ids), 3)
            np.testing.assert_array_equal(X, s.group["waveform"][:][ids])
            np.testing.assert_array_equal(y, s.params_unit()[ids])
            got.extend(ids.tolist())
        assert sorted(got) == train.tolist()
        seen.append(got)
    assert seen[0] == train.tolist()
    # bounded memory, whole chunks: each pass decodes at most `window` chunks per read, each about once
    reads = []
    read = s.read_span
    s.read_span = lambda arr, lo, hi: reads.append((arr.path, lo, hi)) or read(arr, lo, hi)
    sum(len(ids) for ids, _, _ in s.batches("train", batch_size=7, shuffle=True, window=2))
    waves = [(lo, hi) for name, lo, hi in reads if name == "waveform"]
    assert all(hi - lo <= 2 * 16 for lo, hi in waves) and len(waves) <= s.n_chunks + 2
    assert seen[1] == seen[2] != seen[3] and seen[1] != seen[0]
    for bad in ({"batch_size": 0}, {"window": 0}):
        with pytest.raises(InputError, match="batch_size and window must be >= 1"):
            next(s.batches(**bad))


def test_spectrograms_on_the_fly(ref):
    from wavinv.frontend import frontend_config, spectrogram
    from wavinv.pictures import spectrogram_batches, store_spectrograms

    s = open_store(ref)
    cfg = frontend_config(sample_rate=8000, n_samples=1024, n_freq=64, n_frames=32)
    spec_val = store_spectrograms(s, "val", frontend=cfg)
    assert spec_val.shape == (len(s.split_indices("val")), 64, 32)
    expected = spectrogram(s.waveforms("val")[:], cfg)
    np.testing.assert_allclose(spec_val[:], expected, atol=1e-4)
    ids, X, y = next(spectrogram_batches(s, "val", batch_size=4, frontend=cfg))
    np.testing.assert_allclose(X, expected[:4], atol=1e-4)
    assert store_spectrograms(s).shape == (70, 512, 512)  # the recorded default frontend
    with pytest.raises(InputError, match="batch_size and window must be >= 1"):  # refused before a frontend is built
        next(spectrogram_batches(s, batch_size=0, frontend={"kind": "no such frontend"}))


def test_fingerprint_and_summary(ref, tmp_path):
    s = open_store(ref)
    other = generate(tmp_path / "s", TOY, 70, seed=4, chunk=16, progress=False)
    assert len(s.fingerprint) == 16 and s.fingerprint != other.fingerprint
    info = s.summary()
    json.dumps(info)
    assert info["n"] == 70 and info["chunks_complete"] == info["n_chunks"] == 5 and info["complete"]
    assert info["generator"]["name"] == "toy" and info["space"]["n_params"] == 3
    assert info["bytes_on_disk"] > 0 and sum(info["splits"].values()) == 70


def memory_tree(url: str) -> dict[str, str]:
    """sha256 of every array file of a memory:// store (as ``array_tree``)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return {k[len(root) + 1 :]: hashlib.sha256(fs.cat_file(k)).hexdigest() for k in fs.find(root) if not k.endswith(f"{root}/zarr.json")}


def test_an_fsspec_url_store_has_the_same_bytes_resumes_and_verifies(ref, tmp_path, monkeypatch):
    import fsspec

    url = f"memory://wavinv-tests/{tmp_path.name}/store"
    calls = {"n": 0}
    real = Store.write_chunk

    def dies_on_third(store, k, data, pooled):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(store, k, data, pooled)

    monkeypatch.setattr(Store, "write_chunk", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        generate(url, TOY, 70, seed=3, chunk=16, progress=False)
    monkeypatch.setattr(Store, "write_chunk", real)
    assert not open_store(url).is_complete
    store = generate(url, TOY, 70, seed=3, chunk=16, progress=False)
    assert str(store.location) == url and store.is_complete
    assert memory_tree(url) == array_tree(ref)
    assert verify(url, progress=False).ok
    np.testing.assert_array_equal(store.waveforms("test")[:], open_store(ref).waveforms("test")[:])
    with pytest.raises(StoreError, match="local directory"):
        store.path
    # a missing chunk file is found, as on disk
    fs, root = fsspec.core.url_to_fs(url)
    fs.rm_file(f"{root}/waveform/c/1/0")
    assert any("missing" in p for p in verify(url, progress=False).problems)
    with pytest.raises(InputError, match="one process"):
        generate(f"memory://wavinv-tests/{tmp_path.name}/other", TOY, 70, seed=3, workers=2, progress=False)


def test_an_interrupted_url_creation_is_never_taken_for_a_store(tmp_path, monkeypatch):
    url = f"memory://wavinv-tests/{tmp_path.name}/half"
    import wavinv.store as store_mod

    real = store_mod.compressors
    made = {"n": 0}

    def dies_on_the_third_array():
        made["n"] += 1
        if made["n"] == 3:
            raise KeyboardInterrupt
        return real()

    monkeypatch.setattr(store_mod, "compressors", dies_on_the_third_array)
    with pytest.raises(KeyboardInterrupt):
        generate(url, TOY, 20, seed=0, chunk=8, progress=False)
    from wavinv.store import is_store

    assert not is_store(url)
    with pytest.raises(StoreError, match="not a wavinv store"):
        open_store(url)


def test_unknown_url_protocols_are_refused_clearly():
    with pytest.raises(StoreError, match="cannot open this URL"):
        open_store("nosuchprotocol://bucket/store")


def test_a_local_layout_is_zarrs_own_written_file_by_file(tmp_path):
    """``create_local_layout`` writes the same files, byte for byte, as zarr writing the layout itself."""
    from wavinv.store import create_layout, create_local_layout

    meta = {"n": 10, "chunk": 4, "n_samples": 8, "note": "x"}
    create_layout(str(tmp_path / "zarr"), "w-", meta, 3)
    create_local_layout(tmp_path / "local", meta, 3)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(tmp_path / "local") == files(tmp_path / "zarr") and "zarr.json" in files(tmp_path / "local")
    with pytest.raises(FileExistsError):  # a new folder only: never written into an existing one
        create_local_layout(tmp_path / "local", meta, 3)
