"""Model files from elsewhere: a joblib file is a pickle, and loading one runs the code it names.

What wavinv does about it: ``wavinv.load(path, sha256=HEX)`` and ``invert --sha256``
refuse a file with another SHA-256 before unpickling anything; ``wavinv info``
reads a model's manifest without unpickling and prints the SHA-256 to pin; the
demo loads only a model whose SHA-256 it recorded fitting. Each hostile file here
would write a marker file if any of its code ran.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import joblib
import pytest

import wavinv
from wavinv import InputError, ModelError
from wavinv.cli import main
from wavinv.inverter import fit_inverter, load, read_manifest

HERE = Path(__file__).parent
TOY = f"{HERE / 'toygen.py'}:toy"


class Planted:
    """Unpickled, it writes ``marker``: the code of a hostile model file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "the planted pickle ran"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    assert main(["generate", "--generator", TOY, "--n", "40", "--chunk", "8", "--out", str(root / "store"), "-q"]) == 0
    fit_inverter(wavinv.open_store(root / "store"), "prior", "waveform", progress=False).save(root / "model.joblib")
    return root / "model.joblib"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def planted(tmp_path, model) -> tuple[Path, Path]:
    """``(file, marker)``: a model file with a genuine manifest and code where the inverter should be."""
    marker = tmp_path / "RAN"
    joblib.dump({"manifest": read_manifest(model), "inverter": Planted(marker)}, tmp_path / "planted.joblib", compress=3)
    return tmp_path / "planted.joblib", marker


def test_a_pinned_load_checks_the_hash_before_unpickling(model, planted):
    path, marker = planted
    with pytest.raises(ModelError, match="SHA-256 .* not the pinned"):
        load(path, sha256=sha256(model))
    assert not marker.exists()
    assert load(model, sha256=sha256(model).upper()).method == "prior"  # any case, and the file loads
    with pytest.raises(InputError, match="64 hex digits"):
        load(model, sha256="not-a-hash")


def test_the_manifest_is_read_without_running_the_file(model, planted):
    path, marker = planted
    assert read_manifest(model) == load(model).manifest()
    assert read_manifest(path)["method"] == "prior"  # what the file says of itself: nothing of it ran
    assert not marker.exists()
    joblib.dump(Planted(marker), path, compress=3)  # no manifest at all: refused, still without running it
    with pytest.raises(ModelError, match="no wavinv manifest readable without running it"):
        read_manifest(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x05not a pickle", b"x\x9c" + b"\x00" * 64, zlib.compress(b"\x00" * (64 << 20)), b"PK\x03\x04 a zip"],
    ids=["empty", "broken-pickle", "broken-zlib", "64-MB-of-zeros", "other-format"],
)
def test_a_file_that_is_not_a_model_has_no_manifest(tmp_path, data):
    (tmp_path / "m.joblib").write_bytes(data)
    with pytest.raises(ModelError, match="not a wavinv model file"):
        read_manifest(tmp_path / "m.joblib")


def test_info_shows_a_planted_file_without_running_it_and_prints_its_sha256(model, planted, capsys):
    path, marker = planted
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"sha256      {sha256(path)}" in out and "runs code" in out and "--sha256" in out
    assert main(["info", str(model)]) == 0
    assert "learnt      " in capsys.readouterr().out  # which parameters the model pins down, read without unpickling
    assert main(["info", "--json", str(model)]) == 0
    assert json.loads(capsys.readouterr().out)["sha256"] == sha256(model)
    assert main(["info", str(path), "--sha256", sha256(model)]) == 2
    assert "not the pinned" in capsys.readouterr().err and not marker.exists()


def test_invert_with_a_pin_refuses_another_file_before_loading_it(model, planted, tmp_path, capsys):
    path, marker = planted
    store = wavinv.open_store(model.parent / "store")
    wavinv.save_wav(store.waveforms()[0], tmp_path / "t.wav", store.sample_rate)
    argv = ["invert", "--generator", TOY, "--target", str(tmp_path / "t.wav"), "--n", "2", "--draws", "4", "--out", str(tmp_path / "c.json")]
    assert main(argv + ["--model", str(path), "--sha256", sha256(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the pinned" in err and not marker.exists() and not (tmp_path / "c.json").exists()
    assert main(argv + ["--model", str(model), "--sha256", sha256(model)]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["candidates"]


def test_the_demo_never_loads_a_model_it_did_not_record(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    marker = tmp_path / "RAN"
    joblib.dump(Planted(marker), out / "model.joblib", compress=3)
    argv = ["demo", "--out", str(out), "--n", "39", "--method", "prior", "--workers", "1", "--refine", "0", "-q"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "is not the one the demo recorded fitting: replaced, not loaded" in text and not marker.exists()
    record = json.loads((out / "demo-model.json").read_text())
    assert record["sha256"] == sha256(out / "model.joblib") and record["method"] == "prior"
    # its own model is reused; a model changed since the demo recorded it is not
    assert main(argv) == 0 and "2/4 reusing" in capsys.readouterr().out
    joblib.dump(Planted(marker), out / "model.joblib", compress=3)
    assert main(argv) == 0 and "replaced, not loaded" in capsys.readouterr().out and not marker.exists()
