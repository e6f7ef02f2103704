"""The hostile battery: what a hostile or unlucky user tries, command by command.

Every case runs one ``wavinv`` command in a fresh copy of a small workspace (a
40-clip store, a model, targets, a generator file) and asserts the contract:
exit status 2, exactly one line on stderr naming the problem, no traceback, and
nothing lost or left behind -- every file (and folder) under the test's folder,
inputs included, is byte-identical afterwards, with no temporary file.
Add a row to ``CASES`` for each new way of breaking a command.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest

from wavinv import InputError, open_store
from wavinv.cli import DEMO_MIN_N, main
from wavinv.inverter import fit_inverter
from wavinv.targets import save_spectrogram_png, save_wav

HERE = Path(__file__).parent
TOY = f"{HERE / 'toygen.py'}:toy"
ROOT_USER = os.geteuid() == 0


# -- the workspace ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Built once: store/ (40 toy clips, chunks of 8), model.joblib, targets, gen.py (a copy of toygen)."""
    root = tmp_path_factory.mktemp("hostile") / "ws"
    root.mkdir()
    assert main(["generate", "--generator", TOY, "--n", "40", "--chunk", "8", "--seed", "1", "--out", str(root / "store"), "-q"]) == 0
    store = open_store(root / "store")
    fit_inverter(store, "prior", "waveform", progress=False).save(root / "model.joblib")
    wave = store.waveforms()[int(store.split_indices("test")[0])]
    save_wav(wave, root / "target.wav", store.sample_rate)
    np.save(root / "target.npy", wave)
    save_spectrogram_png(np.full((512, 512), -50.0, np.float32), root / "spec.png")
    shutil.copy(HERE / "toygen.py", root / "gen.py")
    return root


@pytest.fixture
def ws(pristine, tmp_path) -> Path:
    """A fresh copy of the workspace; tmp_path/outside/ is a folder beside it that no command may touch."""
    dest = tmp_path / "ws"
    shutil.copytree(pristine, dest, symlinks=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.bin").write_bytes(b"outside the store")
    return dest


def snapshot(root: Path) -> dict[str, str]:
    """Every folder, link and file below ``root``, files by SHA-256 (links are not followed)."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(top, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link -> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


TEMP_MARKS = (".tmp-", ".creating-", ".partial")


def temps(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if any(m in p.name for m in TEMP_MARKS)]


# -- ways to spoil the workspace (each takes the workspace, may return a clean-up) -------------
def edit_meta(**changes):
    def setup(ws: Path):
        f = ws / "store" / "zarr.json"
        doc = json.loads(f.read_text())
        meta = doc["attributes"]["wavinv"]
        for key, value in changes.items():
            where = meta
            *parents, last = key.split(".")
            for part in parents:
                where = where[part]
            if value is _DELETE:
                del where[last]
            else:
                where[last] = value
        f.write_text(json.dumps(doc))

    return setup


_DELETE = object()


def payload(ws: Path) -> None:
    """A store whose recorded spec is a file that would write PWNED if imported."""
    (ws / "payload.py").write_text("from pathlib import Path\nPath(__file__).with_name('PWNED').write_text('ran')\ngen = None\n")
    edit_meta(**{"generator.spec": f"{ws / 'payload.py'}:gen"})(ws)


def write(name: str, data: bytes):
    def setup(ws: Path):
        (ws / name).write_bytes(data)

    return setup


def npy(name: str, array):
    def setup(ws: Path):
        np.save(ws / name, array, allow_pickle=True)

    return setup


def model_with(change):
    """A model file whose contents ``change(obj)`` spoilt (``obj`` is the saved dict)."""

    def setup(ws: Path):
        obj = joblib.load(ws / "model.joblib")
        obj = change(obj)
        joblib.dump(obj, ws / "bad.joblib")

    return setup


def _drop_frontend_key(obj):
    del obj["inverter"].frontend["n_freq"]
    obj["manifest"] = obj["inverter"].manifest()
    return obj


def _drop_manifest_generator(obj):
    del obj["manifest"]["generator"]
    return obj


def _other_version(obj):
    obj["manifest"]["wavinv_version"] = "0.0.1"  # loading it logs a warning: held back, the error stays one line
    return obj


def wav_at(name: str, rate: int, n: int):
    """A WAV at another sample rate (resampling logs a warning before the length is refused)."""

    def setup(ws: Path):
        save_wav(np.zeros(n, np.float32), ws / name, rate)

    return setup


def gen_file(name: str, body: str):
    """A generator file: toygen's ``toy`` with ``body`` added."""

    def setup(ws: Path):
        (ws / name).write_text((HERE / "toygen.py").read_text() + "\n" + body + "\n")

    return setup


def delete(rel: str):
    def setup(ws: Path):
        (ws / rel).unlink()

    return setup


def flip(rel: str, at: int = -9):
    def setup(ws: Path):
        f = ws / rel
        data = bytearray(f.read_bytes())
        data[at] ^= 0x40
        f.write_bytes(bytes(data))

    return setup


def link(rel: str, to: str):
    def setup(ws: Path):
        p = ws / rel
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
        p.symlink_to(ws.parent / to)

    return setup


def also_link(rel: str, to: str):
    def setup(ws: Path):
        (ws / rel).symlink_to(ws / to)

    return setup


def also_hardlink(rel: str, to: str):
    def setup(ws: Path):
        os.link(ws / to, ws / rel)

    return setup


def make_dir(rel: str):
    def setup(ws: Path):
        (ws / rel).mkdir(parents=True)

    return setup


def fifo(rel: str):
    def setup(ws: Path):
        os.mkfifo(ws / rel)

    return setup


def readonly(rel: str, recursive: bool = False):
    """Make a folder unwritable: chmod for a user, the immutable attribute for root (root ignores modes)."""

    def setup(ws: Path):
        p = ws / rel
        if ROOT_USER:
            flags = ["-R"] if recursive else []
            if subprocess.run(["chattr", *flags, "+i", str(p)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i is not available here")
            return lambda: subprocess.run(["chattr", *flags, "-i", str(p)], check=True)
        paths = [p, *(q for q in p.rglob("*") if q.is_dir())] if recursive else [p]
        for q in paths:
            q.chmod(0o500)
        return lambda: [q.chmod(0o700) for q in paths]

    return setup


def png16(name: str, rows: int, cols: int):
    def setup(ws: Path):
        from PIL import Image

        Image.fromarray(np.full((rows, cols), 40000, np.uint16)).save(ws / name)

    return setup


def png_bomb(name: str, side: int = 20000):
    """A tiny PNG whose header claims ``side`` x ``side`` 8-bit grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    def setup(ws: Path):
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        idat = zlib.compress(b"\0" * (side + 1) * 4)
        (ws / name).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))

    return setup


def both(*setups):
    def setup(ws: Path):
        cleanups = [s(ws) for s in setups]
        cleanups = [c for c in cleanups if c]
        return (lambda: [c() for c in cleanups]) if cleanups else None

    return setup


# a generator object (not a FunctionGenerator) with a version JSON cannot hold as such
FLOAT_VERSION = """
class G:
    space, sample_rate, n_samples, name, version = SPACE, 8000, N_SAMPLES, "g", 1.5

    def render(self, params):
        return render_clips(params)


g = G()
"""

# -- the battery -----------------------------------------------------------------------------
INV = ["invert", "--model", "{ws}/model.joblib", "--generator", TOY, "--n", "2", "--draws", "4"]
INV_WAV = INV + ["--target", "{ws}/target.wav"]
FIT = ["fit", "--store", "{ws}/store", "--method", "prior", "--input", "waveform", "-q"]
FIT_KNN = ["fit", "--store", "{ws}/store", "--method", "knn", "--input", "waveform", "--set", "n_neighbors=2", "--set", "n_components=4", "-q"]
GEN = ["generate", "--generator", TOY, "--n", "40", "--chunk", "8", "--seed", "1", "--out", "{ws}/store", "-q"]
VERIFY = ["verify", "-q", "{ws}/store"]
BENCH = ["bench", "--store", "{ws}/store", "--profile", "test", "--methods", "prior", "--inputs", "waveform", "--generator", TOY, "-q"]
DEMO = ["demo", "--out", "{ws}/demo", "--quiet"]

# (id, setup or None, argv, a piece of the one-line message)
CASES = [
    # 1. a store's or model's metadata never causes an import the user did not name
    ("verify-rerender-recorded-file-spec", None, VERIFY + ["--rerender", "2"], "name it with --generator SPEC"),
    ("verify-rerender-payload-spec", payload, VERIFY + ["--rerender", "2"], "never imports a recorded spec"),
    ("verify-rerender-os-abort-spec", edit_meta(**{"generator.spec": "os:abort"}), VERIFY + ["--rerender", "2"], "spec 'os:abort'"),
    ("verify-rerender-other-generator", None, VERIFY + ["--rerender", "2", "--generator", f"{HERE / 'toygen.py'}:other"], "not 'other'"),
    ("bench-recorded-file-spec", None, ["bench", "--store", "{ws}/store", "--out", "{ws}/b", "--profile", "test", "--methods", "prior", "-q"], "--generator"),
    ("bench-payload-spec", payload, ["bench", "--store", "{ws}/store", "--out", "{ws}/b", "--profile", "test", "--methods", "prior", "-q"], "--generator"),
    ("invert-recorded-file-spec", None, ["invert", "--model", "{ws}/model.joblib", "--target", "{ws}/target.wav", "--out", "{ws}/c.json"], "name it with --generator"),
    # 2. an output is never one of the command's inputs
    ("invert-out-is-model", None, INV_WAV + ["--out", "{ws}/model.joblib"], "is the model"),
    ("invert-out-is-target", None, INV_WAV + ["--out", "{ws}/target.wav"], "is the target"),
    ("invert-plot-is-target", None, INV + ["--target", "{ws}/spec.png", "--out", "{ws}/c.json", "--plot", "{ws}/spec.png"], "is the target"),
    ("invert-plot-is-model", None, INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/model.joblib"], "is the model"),
    ("invert-out-is-generator-file", None, INV_WAV[:4] + ["{ws}/gen.py:toy"] + INV_WAV[5:] + ["--out", "{ws}/gen.py"], "is the generator file"),
    ("invert-out-dotdot-model", None, INV_WAV + ["--out", "{ws}/store/../model.joblib"], "is the model"),
    ("invert-out-symlink-to-model", also_link("m.link", "model.joblib"), INV_WAV + ["--out", "{ws}/m.link"], "is the model"),
    ("invert-out-hardlink-to-target", also_hardlink("t.hard", "target.wav"), INV_WAV + ["--out", "{ws}/t.hard"], "is the target"),
    ("invert-out-and-plot-same-file", None, INV_WAV + ["--out", "{ws}/c.out", "--plot", "{ws}/c.out"], "name the same file"),
    ("invert-report-is-target", None, INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/target.wav"], "is the target"),
    ("invert-report-is-model", None, INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/model.joblib"], "is the model"),
    ("invert-report-is-generator-file", None, INV_WAV[:4] + ["{ws}/gen.py:toy"] + INV_WAV[5:] + ["--out", "{ws}/c.json", "--report", "{ws}/gen.py"], "is the generator file"),
    ("invert-report-is-the-out-json", None, INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/c.json"], "name the same file"),
    ("invert-report-is-the-plot", None, INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/p.html", "--report", "{ws}/p.html"], "name the same file"),
    ("invert-report-symlink-to-target", also_link("p.html", "target.wav"), INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/p.html"], "is the target"),
    ("fit-out-is-store", None, FIT + ["--out", "{ws}/store"], "is the store"),
    ("fit-out-is-store-metadata", None, FIT + ["--out", "{ws}/store/zarr.json"], "inside the store"),
    ("fit-out-inside-store", None, FIT + ["--out", "{ws}/store/model.joblib"], "inside the store"),
    ("bench-out-is-store", None, BENCH + ["--out", "{ws}/store"], "is the store"),
    ("bench-out-inside-store", None, BENCH + ["--out", "{ws}/store/bench"], "inside the store"),
    # 3. write failures: one line, no debris
    ("fit-out-is-directory", make_dir("m.joblib"), FIT + ["--out", "{ws}/m.joblib"], "is a directory"),
    ("invert-out-is-directory", make_dir("c.json"), INV_WAV + ["--out", "{ws}/c.json"], "is a directory"),
    ("invert-plot-is-directory", make_dir("c.png"), INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/c.png"], "is a directory"),
    ("invert-report-is-directory", make_dir("page.html"), INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/page.html"], "is a directory"),
    ("invert-report-is-the-workspace", None, INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}"], "is a directory"),
    ("invert-report-folder-missing", None, INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/no/page.html"], "output folder does not exist"),
    ("invert-report-folder-readonly", both(make_dir("ro"), readonly("ro")), INV_WAV + ["--out", "{ws}/c.json", "--report", "{ws}/ro/page.html"], "ro"),
    ("invert-out-is-fifo", fifo("c.json"), INV_WAV + ["--out", "{ws}/c.json"], "not a regular file"),
    ("invert-out-is-dev-null", None, INV_WAV + ["--out", "/dev/null"], "not a regular file"),
    ("fit-out-folder-missing", None, FIT + ["--out", "{ws}/no/such/m.joblib"], "output folder does not exist"),
    ("invert-plot-folder-missing", None, INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/no/c.png"], "output folder does not exist"),
    ("fit-out-folder-readonly", both(make_dir("ro"), readonly("ro")), FIT + ["--out", "{ws}/ro/m.joblib"], "ro"),
    ("invert-out-folder-readonly", both(make_dir("ro"), readonly("ro")), INV_WAV + ["--out", "{ws}/ro/c.json"], "ro"),
    ("generate-into-readonly-folder", both(make_dir("ro"), readonly("ro")), ["generate", "--generator", TOY, "--n", "8", "--out", "{ws}/ro/s", "-q"], "cannot create"),
    ("generate-grow-readonly-store", readonly("store", recursive=True), GEN[:4] + ["48"] + GEN[5:], "cannot write the store"),
    ("demo-out-is-a-file", None, ["demo", "--out", "{ws}/model.joblib", "--quiet"], "not a directory"),
    ("generate-float-version", gen_file("g.py", FLOAT_VERSION),  ["generate", "--generator", "{ws}/g.py:g", "--n", "8", "--out", "{ws}/s", "-q"], "version must be a str or an int"),
    ("bench-out-is-a-file", None, BENCH + ["--out", "{ws}/model.joblib"], "exists and is not a directory"),
    ("bench-out-folder-readonly", both(make_dir("ro"), readonly("ro")), BENCH + ["--out", "{ws}/ro/b"], "ro"),
    # names and kinds that do not exist, refused before any work
    ("generate-sampling-bogus", None, ["generate", "--generator", TOY, "--n", "8", "--sampling", "bogus", "--out", "{ws}/s", "-q"], "invalid choice: 'bogus'"),
    ("generate-method-is-the-estimator", None, ["generate", "--generator", TOY, "--n", "8", "--method", "sobol", "--out", "{ws}/s", "-q"], "the parameter sampling is --sampling"),
    ("fit-method-bogus", None, ["fit", "--store", "{ws}/store", "--method", "bogus", "--out", "{ws}/m.joblib"], "unknown method 'bogus'"),
    ("fit-input-bogus", None, FIT[:6] + ["bogus", "--out", "{ws}/m.joblib"], "invalid choice: 'bogus'"),
    ("fit-store-is-a-file", None, ["fit", "--store", "{ws}/model.joblib", "--method", "prior", "--out", "{ws}/m.joblib"], "is not a wavinv store"),
    ("bench-methods-bogus", None, BENCH[:6] + ["bogus"] + BENCH[7:] + ["--out", "{ws}/b"], "unknown method 'bogus'"),
    ("bench-inputs-bogus", None, BENCH[:8] + ["bogus"] + BENCH[9:] + ["--out", "{ws}/b"], "unknown input 'bogus'"),
    ("bench-profile-bogus", None, BENCH[:3] + ["--profile", "bogus"] + BENCH[5:] + ["--out", "{ws}/b"], "bogus"),
    ("invert-target-is-the-model", None, INV + ["--target", "{ws}/model.joblib", "--out", "{ws}/c.json"], "unsupported target type"),
    ("invert-target-is-a-folder", None, INV + ["--target", "{ws}/store", "--out", "{ws}/c.json"], "target not found"),
    ("verify-a-file", None, ["verify", "{ws}/model.joblib"], "is not a wavinv store"),
    ("info-missing-path", None, ["info", "{ws}/none"], "no such file or directory"),
    # 4. sizes and ranges, checked before any work
    ("generate-n-1e12", None, ["generate", "--generator", TOY, "--n", str(10**12), "--out", "{ws}/s", "-q"], "memory"),
    ("generate-n-beyond-disk", None, ["generate", "--generator", TOY, "--n", str(10**8), "--out", "{ws}/s", "-q"], "of disk"),
    ("generate-seed-negative", None, ["generate", "--generator", TOY, "--n", "8", "--seed", "-1", "--out", "{ws}/s", "-q"], "--seed: must be >= 0"),
    ("generate-chunk-zero", None, ["generate", "--generator", TOY, "--n", "8", "--chunk", "0", "--out", "{ws}/s", "-q"], "--chunk: must be >= 1"),
    ("generate-workers-zero", None, ["generate", "--generator", TOY, "--n", "8", "--workers", "0", "--out", "{ws}/s", "-q"], "--workers: must be >= 1"),
    ("generate-n-not-a-number", None, ["generate", "--generator", TOY, "--n", "many", "--out", "{ws}/s", "-q"], "expected an integer"),
    ("verify-seed-negative", None, VERIFY + ["--seed", "-1"], "--seed: must be >= 0"),
    # the feature cache: a store is its only output, and an input it needs must be there
    ("cache-not-a-store", None, ["cache", "{ws}/outside", "-q"], "no such store"),
    ("cache-a-file", None, ["cache", "{ws}/model.joblib", "-q"], "is not a wavinv store"),
    ("cache-pool-zero", None, ["cache", "{ws}/store", "--pool", "0x64", "-q"], "expected FxT such as 64x64"),
    ("cache-pool-one-number", None, ["cache", "{ws}/store", "--pool", "64", "-q"], "expected FxT such as 64x64"),
    ("cache-readonly-store", readonly("store", recursive=True), ["cache", "{ws}/store", "-q"], "cannot write"),
    ("cache-symlinked-chunk", link("store/params/c", "outside"), ["cache", "{ws}/store", "-q"], "is a symbolic link"),
    ("cache-incomplete-store", delete("store/complete/c/2"), ["cache", "{ws}/store", "-q"], "is incomplete"),
    ("generate-no-waveforms-into-a-store-with-them", None, GEN + ["--no-waveforms"], "keeps waveforms: leave out --no-waveforms"),
    ("verify-rerender-negative", None, VERIFY + ["--rerender", "-3"], "--rerender: must be >= 0"),
    ("fit-seed-negative", None, FIT + ["--seed", "-1", "--out", "{ws}/m.joblib"], "--seed: must be >= 0"),
    ("invert-seed-negative", None, INV_WAV + ["--seed", "-1", "--out", "{ws}/c.json"], "--seed: must be >= 0"),
    ("invert-refine-negative", None, INV_WAV + ["--refine", "-1", "--out", "{ws}/c.json"], "--refine: must be >= 0"),
    ("invert-refine-not-integer", None, INV_WAV + ["--refine", "2.5", "--out", "{ws}/c.json"], "--refine"),
    ("invert-time-limit-zero", None, INV_WAV + ["--refine", "8", "--time-limit", "0", "--out", "{ws}/c.json"], "--time-limit: must be above 0 (seconds)"),
    ("invert-time-limit-inf", None, INV_WAV + ["--refine", "8", "--time-limit", "inf", "--out", "{ws}/c.json"], "--time-limit: must be above 0 (seconds)"),
    ("invert-min-distance-above-one", None, INV_WAV + ["--refine", "8", "--min-distance", "2", "--out", "{ws}/c.json"], "--min-distance: must be at least 0 and at most 1"),
    ("invert-runs-zero", None, INV_WAV + ["--refine", "8", "--runs", "0", "--out", "{ws}/c.json"], "--runs: must be >= 1"),
    ("invert-runs-without-refine", None, INV_WAV + ["--runs", "2", "--out", "{ws}/c.json"], "--runs sets the search: give --refine R too"),
    ("invert-screen-factor-too-large", None, INV_WAV + ["--refine", "8", "--screen-factor", "65", "--out", "{ws}/c.json"],
     "refine option screen_factor must be in 1..64"),
    ("invert-time-limit-word", None, INV_WAV + ["--refine", "8", "--time-limit", "soon", "--out", "{ws}/c.json"], "--time-limit: expected a number"),
    ("invert-refine-beyond-time-limit", None, INV_WAV + ["--refine", "1000000000", "--time-limit", "5", "--out", "{ws}/c.json"], "over the time limit of 5 s"),
    ("invert-draws-1e9", None, INV_WAV[:-4] + ["--n", "2", "--draws", str(10**9), "--target", "{ws}/target.wav", "--out", "{ws}/c.json"], "of memory"),
    ("invert-n-zero", None, INV_WAV + ["--n", "0", "--out", "{ws}/c.json"], "--n: must be >= 1"),
    ("invert-n-above-draws", None, INV_WAV + ["--n", "9", "--out", "{ws}/c.json"], "--n <= --draws"),
    ("invert-shortlist-below-n", None, INV_WAV + ["--shortlist", "1", "--out", "{ws}/c.json"], "--shortlist must keep"),
    ("bench-draws-1e9", None, BENCH + ["--draws", str(10**9), "--out", "{ws}/b"], "of memory"),
    ("bench-seed-negative", None, BENCH + ["--seed", "-1", "--out", "{ws}/b"], "--seed: must be >= 0"),
    ("bench-k-above-draws", None, BENCH + ["--k", "5", "--draws", "2", "--out", "{ws}/b"], "must be <= draws"),
    ("demo-n-3", None, DEMO + ["--n", "3"], f"must be >= {DEMO_MIN_N}"),
    ("demo-n-20", None, DEMO + ["--n", "20"], f"must be >= {DEMO_MIN_N}"),
    ("demo-method-bogus", None, DEMO + ["--method", "bogus", "--n", "100"], "unknown method 'bogus'"),
    ("demo-n-1e12", None, DEMO + ["--n", str(10**12)], "memory"),
    ("demo-out-folder-readonly", both(make_dir("ro"), readonly("ro")), ["demo", "--out", "{ws}/ro/demo", "--n", "40", "--quiet"], "ro"),
    ("demo-workers-zero", None, DEMO + ["--workers", "0"], "--workers: must be >= 1"),
    ("invert-png-bomb", png_bomb("bomb.png"), INV + ["--target", "{ws}/bomb.png", "--out", "{ws}/c.json"], "image too large to decode safely"),
    ("invert-png-db-range-empty", None, INV + ["--target", "{ws}/spec.png", "--db-range", "0", "0", "--out", "{ws}/c.json"], "low < high"),
    # 5. damaged files are reported as damaged
    ("invert-png-16bit-wrong-size", png16("s16.png", 64, 64), INV + ["--target", "{ws}/s16.png", "--out", "{ws}/c.json"], "image is 64x64"),
    ("invert-png-rgb-float-mode", write("f.png", b"\x89PNG\r\n\x1a\nnot really"), INV + ["--target", "{ws}/f.png", "--out", "{ws}/c.json"], "not a readable image"),
    ("invert-model-manifest-none", model_with(lambda o: {**o, "manifest": None}), INV_WAV[:2] + ["{ws}/bad.joblib"] + INV_WAV[3:] + ["--out", "{ws}/c.json"], "manifest must be a mapping"),
    ("invert-model-no-generator", model_with(_drop_manifest_generator), INV_WAV[:2] + ["{ws}/bad.joblib"] + INV_WAV[3:] + ["--out", "{ws}/c.json"], "'generator' is missing"),
    ("invert-model-frontend-no-n_freq", model_with(_drop_frontend_key), INV_WAV[:2] + ["{ws}/bad.joblib"] + INV_WAV[3:] + ["--out", "{ws}/c.json"], "frontend 'n_freq' is missing"),
    ("invert-model-random-bytes", write("bad.joblib", os.urandom(256)), INV_WAV[:2] + ["{ws}/bad.joblib"] + INV_WAV[3:] + ["--out", "{ws}/c.json"], "not a readable wavinv model"),
    ("invert-model-empty", write("bad.joblib", b""), INV_WAV[:2] + ["{ws}/bad.joblib"] + INV_WAV[3:] + ["--out", "{ws}/c.json"], "not a readable wavinv model"),
    ("invert-model-a-list", model_with(lambda o: [o]), INV_WAV[:2] + ["{ws}/bad.joblib"] + INV_WAV[3:] + ["--out", "{ws}/c.json"], "not a wavinv model file"),
    ("info-model-manifest-none", model_with(lambda o: {**o, "manifest": None}), ["info", "{ws}/bad.joblib"], "no wavinv manifest readable"),
    ("info-model-no-generator", model_with(_drop_manifest_generator), ["info", "{ws}/bad.joblib"], "'generator' is missing"),
    ("info-model-sha256-malformed", None, ["info", "{ws}/model.joblib", "--sha256", "abc"], "64 hex digits"),
    ("invert-model-sha256-other", None, INV_WAV + ["--sha256", "0" * 64, "--out", "{ws}/c.json"], "not the pinned"),
    ("info-store-chunk-zero", edit_meta(chunk=0), ["info", "{ws}/store"], "'chunk' must be >= 1"),
    ("verify-store-chunk-zero", edit_meta(chunk=0), VERIFY, "'chunk' must be >= 1"),
    ("fit-store-chunk-zero", edit_meta(chunk=0), FIT + ["--out", "{ws}/m.joblib"], "'chunk' must be >= 1"),
    ("generate-store-chunk-zero", edit_meta(chunk=0), GEN, "generate re-renders chunks, not metadata"),
    ("info-store-n-many", edit_meta(n="many"), ["info", "{ws}/store"], "'n' must be int"),
    ("info-store-seed-negative", edit_meta(seed=-5), ["info", "{ws}/store"], "'seed' must be >= 0"),
    ("info-store-no-space", edit_meta(**{"generator.space": _DELETE}), ["info", "{ws}/store"], "generator 'space' is missing"),
    ("info-store-bad-space", edit_meta(**{"generator.space": [{"name": "f", "low": "x"}]}), ["info", "{ws}/store"], "generator space is not valid"),
    ("info-store-frontend-list", edit_meta(frontend=[1, 2]), ["info", "{ws}/store"], "'frontend' must be dict or None"),
    ("info-store-n-1e12", edit_meta(n=10**12), ["info", "{ws}/store"], "claims 1000000000000 samples"),
    ("verify-store-n-1e12", edit_meta(n=10**12), VERIFY, "claims 1000000000000 samples"),
    ("info-store-zarr-json-not-json", write("store/zarr.json", b"{not json"), ["info", "{ws}/store"], "zarr.json is not valid JSON"),
    ("verify-store-array-metadata-damaged", write("store/waveform/zarr.json", b"{not json"), VERIFY, "damaged store metadata"),
    ("info-store-array-chunks-changed", flip("store/params/zarr.json", at=0), ["info", "{ws}/store"], "damaged store metadata"),
    ("fit-store-chunk-missing", delete("store/waveform/c/1/0"), FIT_KNN + ["--out", "{ws}/m.joblib"], "waveform/c/1/0 (samples 8..15) is missing"),
    ("fit-store-chunk-flipped", flip("store/waveform/c/2/0"), FIT_KNN + ["--out", "{ws}/m.joblib"], "cannot be read"),
    ("invert-npy-1e300", npy("big.npy", np.full(1024, 1e300)), INV + ["--target", "{ws}/big.npy", "--out", "{ws}/c.json"], "too large for float32"),
    ("invert-npy-nan", npy("nan.npy", np.full(1024, np.nan)), INV + ["--target", "{ws}/nan.npy", "--out", "{ws}/c.json"], "NaN or Inf"),
    ("invert-npy-pickle", npy("obj.npy", np.array([{"a": 1}], dtype=object)), INV + ["--target", "{ws}/obj.npy", "--out", "{ws}/c.json"], "not a readable .npy"),
    ("invert-npy-wrong-length", npy("short.npy", np.zeros(100, np.float32)), INV + ["--target", "{ws}/short.npy", "--out", "{ws}/c.json"], "100 samples"),
    ("invert-wav-truncated", write("t.wav", b"RIFF\x10\x00\x00\x00WAVEfmt "), INV + ["--target", "{ws}/t.wav", "--out", "{ws}/c.json"], "not a readable WAV"),
    ("invert-target-unsupported", write("t.txt", b"1 2 3"), INV + ["--target", "{ws}/t.txt", "--out", "{ws}/c.json"], "unsupported target type"),
    ("invert-other-version-model-bad-target", model_with(_other_version), INV[:2] + ["{ws}/bad.joblib"] + INV[3:] + ["--target", "{ws}/none.wav", "--out", "{ws}/c.json"], "target not found"),
    ("invert-wav-resampled-wrong-length", wav_at("r.wav", 16000, 1000), INV + ["--target", "{ws}/r.wav", "--out", "{ws}/c.json"], "waveform has 500 samples"),
    ("invert-target-missing", None, INV + ["--target", "{ws}/none.wav", "--out", "{ws}/c.json"], "target not found"),
    # 6. a store whose metadata is damaged cannot be repaired by generate: it says so
    ("generate-store-zarr-json-damaged", write("store/zarr.json", b"{not json"), GEN, "generate re-renders chunks, not metadata"),
    ("generate-foreign-folder", both(make_dir("foreign"), write("foreign/mine.txt", b"keep")), GEN[:-2] + ["{ws}/foreign", "-q"], "is not a wavinv store"),
    # 7. links, exits and warnings
    ("generate-symlinked-chunk", both(delete("store/complete/c/2"), link("store/waveform/c/2/0", "outside/keep.bin")), GEN, "is a symbolic link"),
    ("generate-symlinked-folder", link("store/params/c", "outside"), GEN, "is a symbolic link"),
    ("generate-sys-exit-at-import", gen_file("g.py", "import sys\nsys.exit(3)"), ["generate", "--generator", "{ws}/g.py:toy", "--n", "8", "--out", "{ws}/s", "-q"], "called sys.exit(3)"),
    ("generate-sys-exit-in-render", gen_file("g.py", "import sys\ng = _make(lambda p: sys.exit(4))"), ["generate", "--generator", "{ws}/g.py:g", "--n", "8", "--out", "{ws}/s", "-q"], "SystemExit"),
    ("generate-raise-at-import", gen_file("g.py", "raise RuntimeError('boom')"), ["generate", "--generator", "{ws}/g.py:toy", "--n", "8", "--out", "{ws}/s", "-q"], "RuntimeError: boom"),
    ("generate-render-warns-then-nan", gen_file("g.py", "g = _make(lambda p: (np.log(p[:, :1] * 0) * np.ones((1, N_SAMPLES))).astype(np.float32))"), ["generate", "--generator", "{ws}/g.py:g", "--n", "8", "--out", "{ws}/s", "-q"], "contains NaN or Inf"),
    ("verify-generator-sys-exit", gen_file("g.py", "import sys\nsys.exit(3)"), VERIFY + ["--rerender", "1", "--generator", "{ws}/g.py:toy"], "called sys.exit(3)"),
    ("invert-generator-sys-exit", gen_file("g.py", "import sys\nsys.exit(3)"), INV_WAV[:4] + ["{ws}/g.py:toy"] + INV_WAV[5:] + ["--out", "{ws}/c.json"], "called sys.exit(3)"),
]


def refused(ws: Path, capsys, argv: list[str], message: str, setup=None) -> None:
    """Run ``argv`` and assert the contract: exit 2, one line naming ``message``, nothing changed, no temp files."""
    area = ws.parent
    cleanup = setup(ws) if setup else None
    try:
        before = snapshot(area)
        code = main([a.replace("{ws}", str(ws)) for a in argv])
        out, err = capsys.readouterr()
        after = snapshot(area)
    finally:
        if cleanup:
            cleanup()
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith(f"wavinv {argv[0]}: error: "), err
    assert message in err, err
    assert "Traceback" not in out + err
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not temps(area)


@pytest.mark.parametrize("setup, argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile(ws, capsys, setup, argv, message):
    refused(ws, capsys, argv, message, setup)


def test_the_battery_is_large_and_distinct():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


# -- failures at the very end of the work (the disk fills up while writing) -----------------------
def _no_space(*args, **kwargs):
    path = next((a for a in args if isinstance(a, (str, Path))), None)
    if path is not None:
        Path(path).write_bytes(b"half a file")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_fit_disk_full_at_the_end(ws, capsys, monkeypatch):
    monkeypatch.setattr(joblib, "dump", _no_space)
    refused(ws, capsys, FIT + ["--out", "{ws}/m.joblib"], "No space left on device")


def test_invert_plot_fails_so_neither_file_is_written(ws, capsys, monkeypatch):
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, fname, **kw: _no_space(fname))
    refused(ws, capsys, INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/c.png"], "No space left on device")


def test_invert_report_fails_so_no_file_is_written(ws, capsys, monkeypatch):
    def half_then_no_space(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_no_space)
    refused(ws, capsys, INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/c.png", "--report", "{ws}/page.html"], "No space left on device")


def test_invert_replaces_stale_temp_files_and_writes_both_outputs(ws, capsys):
    stale = ws / ".c.json.tmp-999999999-deadbeef.json"  # a run killed with kill -9 (that PID cannot exist)
    stale.write_text("{")
    live = ws / f".c.json.tmp-{os.getpid()}-cafecafe.json"  # a run still going: left alone
    live.write_text("{")
    code = main([a.replace("{ws}", str(ws)) for a in INV_WAV + ["--out", "{ws}/c.json", "--plot", "{ws}/c.png"]])
    capsys.readouterr()
    assert code == 0 and not stale.exists() and live.exists()
    assert json.loads((ws / "c.json").read_text())["candidates"] and (ws / "c.png").stat().st_size > 0
    # an existing output that is no input is replaced whole (the overwrite policy)
    assert main([a.replace("{ws}", str(ws)) for a in INV_WAV + ["--out", "{ws}/c.json", "--seed", "3"]]) == 0


def test_generate_removes_the_creating_folder_of_a_killed_run(ws, capsys):
    stale = ws / ".s.creating-999999999-deadbeef"
    (stale / "id").mkdir(parents=True)
    assert main(["generate", "--generator", TOY, "--n", "8", "--out", str(ws / "s"), "-q"]) == 0
    assert not stale.exists() and not temps(ws)


def test_a_numpy_integer_version_is_stored_as_a_plain_int(ws, capsys):
    (ws / "g.py").write_text((HERE / "toygen.py").read_text() + "\n" + FLOAT_VERSION.replace("1.5", "np.int64(3)"))
    assert main(["generate", "--generator", f"{ws / 'g.py'}:g", "--n", "8", "--out", str(ws / "s"), "-q"]) == 0
    assert open_store(ws / "s").generator["version"] == 3 and not temps(ws)


# -- class 6: a damaged store is repaired to the bytes of an undamaged one --------------------
@pytest.mark.parametrize(
    "damage, damaged",
    [
        (flip("store/waveform/c/1/0"), True),
        (delete("store/params/c/3/0"), True),
        (flip("store/complete/c/4", at=-1), True),
        (delete("store/complete/c/0"), False),  # no record: an unfinished chunk, not a damaged one
        (delete("store/id/c/2"), True),
    ],
    ids=["flipped-waveform-byte", "deleted-params-chunk", "flipped-record", "deleted-record", "deleted-id-chunk"],
)
def test_generate_repairs_a_damaged_store_to_the_same_bytes(ws, capsys, caplog, damage, damaged):
    pristine = snapshot(ws / "store")
    damage(ws)
    code = main(["verify", "-q", str(ws / "store")])
    out = capsys.readouterr().out
    repair = next(line for line in out.splitlines() if line.startswith("repair: "))
    assert code == 1 and f"wavinv generate --generator {TOY} --n 40 --seed 1 --sampling uniform --out {ws / 'store'}" in repair
    assert main(GEN_ARGS(ws)) == 0
    assert snapshot(ws / "store") == pristine and not temps(ws)
    assert ("re-rendering 1 damaged chunk" in caplog.text) == damaged
    assert main(["verify", "-q", str(ws / "store")]) == 0


def GEN_ARGS(ws: Path) -> list[str]:
    return [a.replace("{ws}", str(ws)) for a in GEN]


def test_generate_never_calls_a_damaged_store_complete(ws, capsys, caplog):
    flip("store/waveform/c/0/0")(ws)
    assert main(GEN_ARGS(ws)[:-1]) == 0  # not quiet: the summary line
    assert "re-rendering 1 damaged chunk (0)" in caplog.text and "complete" in capsys.readouterr().out
    assert main(["verify", "-q", str(ws / "store")]) == 0


# -- class 5: 16-bit PNG targets keep their 16 bits ---------------------------------------------
def test_a_16_bit_png_is_read_at_16_bits(tmp_path):
    from PIL import Image

    from wavinv.targets import load_target

    levels = np.array([[0, 1, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "s16.png")
    spec = load_target(tmp_path / "s16.png", 8000, 1024).data
    np.testing.assert_allclose(spec[0], -100 + levels[0] / 65535 * 100, atol=1e-4)


def test_a_decompression_bomb_is_an_input_error(tmp_path):
    from wavinv.targets import load_target

    png_bomb("bomb.png", 14000)(tmp_path)  # between Pillow's warning and error limits
    with pytest.raises(InputError, match="too large to decode safely"):
        load_target(tmp_path / "bomb.png", 8000, 1024)


# -- class 1: a built-in recorded generator is the one exception ---------------------------------
def test_a_recorded_built_in_generator_loads_without_being_named():
    from wavinv.generators import generator_identity, load_generator, recorded_generator

    ident = generator_identity(load_generator("synth100"), "synth100")
    assert recorded_generator(ident, None, "a store").name == "synth100"


def test_info_says_a_model_is_a_pickle(capsys):
    assert main(["info", "--help"]) == 0
    assert "runs code" in capsys.readouterr().out


def test_demo_min_n_is_the_smallest_store_the_demo_can_use():
    from wavinv.store import split_of

    def enough(n: int) -> bool:
        train, val, test = np.bincount(split_of(np.arange(n)), minlength=3)
        return test >= 4 and val >= 1 and train >= 2

    assert enough(DEMO_MIN_N) and not any(enough(n) for n in range(1, DEMO_MIN_N))


# -- class 7: warnings do not leak next to the one-line error (pytest would hide them in-process) ----
def test_runtime_warnings_do_not_leak_next_to_the_error(tmp_path):
    import sys

    body = "import warnings\ndef _w(p):\n    warnings.warn('loud', RuntimeWarning)\n    return np.log(np.zeros((len(p), N_SAMPLES), np.float32))\ng = _make(_w)\n"
    (tmp_path / "g.py").write_text((HERE / "toygen.py").read_text() + "\n" + body)
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    cmd = [sys.executable, "-m", "wavinv", "generate", "--generator", f"{tmp_path / 'g.py'}:g", "--n", "8", "--out", str(tmp_path / "s"), "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "contains NaN or Inf" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.py"]


def test_log_warnings_are_held_back_when_the_command_fails(ws):
    import sys

    model_with(_other_version)(ws)  # loading it logs "saved by wavinv 0.0.1"
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    argv = [a.replace("{ws}", str(ws)) for a in INV[:2] + ["{ws}/bad.joblib"] + INV[3:] + ["--target", "{ws}/none.wav", "--out", "{ws}/c.json"]]
    proc = subprocess.run([sys.executable, "-m", "wavinv", *argv], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "target not found" in proc.stderr, proc.stderr
    # the same warning shows after a success
    argv[argv.index(str(ws / "none.wav"))] = str(ws / "target.wav")
    proc = subprocess.run([sys.executable, "-m", "wavinv", *argv], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "saved by wavinv 0.0.1" in proc.stderr, proc.stderr


def test_bench_results_are_written_all_or_nothing(ws, capsys, monkeypatch):
    import wavinv.plots

    monkeypatch.setattr(wavinv.plots, "bench_scatter", lambda rows, path, **kw: _no_space(path))
    before = snapshot(ws / "store")
    code = main([a.replace("{ws}", str(ws)) for a in BENCH + ["--out", "{ws}/b", "--targets", "2"]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err, err
    # the fitted models and per-target results are kept for the next run; no table or figure is
    assert sorted(p.name for p in (ws / "b").iterdir()) == ["evals", "models"]
    assert snapshot(ws / "store") == before and not temps(ws)


@pytest.mark.parametrize(
    "method, input, overrides, message",
    [
        ("knn", "spectrogram", {"n_neighbors": 0}, "knn: n_neighbors must be >= 1, got 0"),
        ("knn", "spectrogram", {"weights": "closest"}, "knn: weights must be one of uniform, distance"),
        ("pca-lgbm", "spectrogram", {"learning_rate": 0}, "pca-lgbm: learning_rate must be a number > 0"),
        ("pca-lgbm", "spectrogram", {"num_leaves": 0}, "pca-lgbm: num_leaves must be >= 1"),
        ("pca-lgbm", "spectrogram", {"feature_fraction": 0}, r"pca-lgbm: feature_fraction must be a number in \(0, 1\]"),
        ("pca-lgbm-quantile", "spectrogram", {"quantiles": [0.9, 0.1]}, "pca-lgbm-quantile: quantiles must be at least two increasing levels"),
        ("pca-lgbm-quantile", "spectrogram", {"calibration_fraction": 1}, r"pca-lgbm-quantile: calibration_fraction must be a number in \[0, 1\)"),
        ("proxy", "spectrogram", {"adapt_steps": -1}, "proxy: adapt_steps"),
        ("sbi-npe", "spectrogram", {"pool_shape": 8}, r"sbi-npe: pool_shape must be \(F, T\), got 8"),
        ("conv1d", "waveform", {"max_epochs": 0}, "conv1d: max_epochs"),
    ],
)
def test_a_bad_hyper_parameter_value_is_refused_before_any_clip_is_read(pristine, monkeypatch, method, input, overrides, message):
    import wavinv.inverter

    def unread(*args, **kwargs):
        raise AssertionError("the store's clips were read before the hyper-parameters were checked")

    monkeypatch.setattr(wavinv.inverter, "store_inputs", unread)
    with pytest.raises(InputError, match=message):
        fit_inverter(open_store(pristine / "store"), method, input, overrides=overrides)
