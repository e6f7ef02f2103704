"""The HTML page to listen to (``wavinv.page``, ``invert --report``): self-contained, escaped, small, and
playable in a real browser.

The browser tests drive the system's chromium (Debian's package) with Playwright; they skip, saying why,
only where no chromium or no playwright is installed. ``.ci/run`` installs chromium.
"""

from __future__ import annotations

import errno
import html.parser
import shutil
from pathlib import Path

import numpy as np
import pytest

from wavinv import Param, ParamSpace, open_store
from wavinv.cli import main
from wavinv.errors import OutputError
from wavinv.frontend import Spectrogram, spectrogram
from wavinv.generators import load_generator, render_checked
from wavinv.inverter import fit_inverter
from wavinv.page import Clip, Page, Reference, Section, page_html, write_page
from wavinv.targets import save_wav

HERE = Path(__file__).parent
TOY = f"{HERE / 'toygen.py'}:toy"
GOAL_BYTES = 5_000_000  # a page for one inversion with K=16
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "</style><b>bold</b>", "a&amp;b", "{{ 7*7 }}"]


# -- pages built from parts ------------------------------------------------------------------------
def synth100_page(k: int = 16) -> Page:
    """A K-candidate page of real synth100 clips and pictures (random parameters stand in for candidates)."""
    gen = load_generator("synth100")
    params = gen.space.from_unit(np.random.default_rng(0).random((k + 1, len(gen.space))))
    waves = render_checked(gen, params)
    module = Spectrogram()
    specs = spectrogram(waves, module)
    cands = [Clip(f"#{i}", specs[i], waves[i], {"lsd_db": 4.0 + i / 4, "mrstft": 2.0}, params[i]) for i in range(1, k + 1)]
    scale = [Reference("#1", 4.25, "candidate"), Reference("chance", 9.5, "chance"), Reference("floor", 3.0, "floor")]
    section = Section("a held-out sound", Clip("target", specs[0], waves[0], params=params[0]), cands, gen.space, scale)
    return Page("synth100", [section], gen.sample_rate, gen.n_samples, module.config(), [("generator", "synth100")])


def long_clip_page(k: int = 16, seconds: float = 4.0, rate: int = 44_100) -> Page:
    """K candidates of a generator with long clips at 44.1 kHz: 16-bit WAV would not fit, so clips are Ogg Vorbis."""
    space = ParamSpace([Param("pitch", 50.0, 2000.0, scale="log", unit="Hz"), Param("level", 0.0, 1.0)])
    n = int(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(1)
    params = space.from_unit(rng.random((k + 1, 2)))
    waves = (params[:, 1:2] * np.sin(2 * np.pi * params[:, :1] * t) + 0.05 * rng.standard_normal((k + 1, n))).astype(np.float32)
    specs = rng.uniform(-100, 0, (k + 1, 512, 512)).astype(np.float32)  # the worst case for PNG: noise
    cands = [Clip(f"#{i}", specs[i], waves[i], {"lsd_db": float(i)}, params[i]) for i in range(1, k + 1)]
    section = Section("long clips", Clip("target", specs[0], waves[0]), cands, space)
    return Page("long clips", [section], rate, n, None)


def hostile_page() -> Page:
    """Every string a user controls is markup."""
    space = ParamSpace([Param(name, 0.0, 1.0, unit="<i>u</i>") for name in HOSTILE])
    spec = np.full((64, 48), -40.0, np.float32)
    wave = np.sin(np.linspace(0, 400, 8000)).astype(np.float32) * 3.0  # too loud: every clip is turned down alike
    cands = [Clip(HOSTILE[0], spec, wave, {"lsd_db": 1.0}, np.full(len(HOSTILE), 0.5))]
    learnt = {name: {"<th>error</th>": 0.1, "prior": 0.3} for name in HOSTILE}
    section = Section(HOSTILE[1], Clip("target", spec, None), cands, space, [Reference(HOSTILE[2], 1.0, "candidate")], [HOSTILE[3]], learnt)
    return Page(HOSTILE[0], [section], 8000, 8000, {"kind": "stft"}, [(HOSTILE[4], HOSTILE[1])])


class Tags(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text between tags."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_the_page_is_self_contained_and_loads_nothing_from_elsewhere():
    tags = Tags(page_html(synth100_page(k=3))).tags
    names = [t for t, _ in tags]
    assert names.count("audio") == 4 and names.count("img") == 4 and "script" not in names
    for tag, attrs in tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("data:"), (tag, attrs[key][:60])
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_every_string_a_generator_names_is_escaped():
    text = page_html(hostile_page())
    parsed = Tags(text)
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "b" in tags  # the page's own <b> only: "</style><b>bold</b>" stays text
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert sum("bold" in s for s in parsed.text) >= 2 and "<i>u</i>" not in text
    shown = "".join(parsed.text)
    for name in HOSTILE:
        assert name in shown, name  # shown as written, not interpreted (the template engine never evaluates it)
    assert "49" not in shown.replace("0.49", "")  # "{{ 7*7 }}" is text, not a template
    assert "turned down by 9.5 dB" in shown  # a peak of 3 would clip: every clip is scaled by the same gain


def test_a_page_for_k16_on_synth100_is_under_5_mb_and_uses_16_bit_wav():
    text = page_html(synth100_page(k=16))
    assert len(text.encode()) < GOAL_BYTES
    assert text.count("data:audio/wav;base64,") == 17 and "audio/ogg" not in text


def test_long_clips_are_compressed_to_keep_k16_under_5_mb():
    text = page_html(long_clip_page())
    assert len(text.encode()) < GOAL_BYTES
    assert text.count("data:audio/ogg;base64,") == 17 and "Ogg Vorbis (lossy" in text


def test_a_failed_write_leaves_no_file_and_says_why(tmp_path, monkeypatch):
    page = hostile_page()
    out = tmp_path / "page.html"
    out.write_text("the earlier page")

    def no_space(self, data):
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        write_page(out, page)
    assert out.read_text() == "the earlier page" and sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_a_page_into_a_folder_that_is_gone_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        write_page(tmp_path / "gone" / "page.html", hostile_page())


# -- the command line -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A toy store, a prior model that says which parameters it learnt, and a target clip."""
    root = tmp_path_factory.mktemp("page")
    assert main(["generate", "--generator", TOY, "--n", "40", "--chunk", "8", "--seed", "1", "--out", str(root / "store"), "-q"]) == 0
    store = open_store(root / "store")
    inv = fit_inverter(store, "prior", "waveform", progress=False)
    inv.validation["learnt"] = {"freq": {"posterior error": 0.04, "prior error": 0.33}, "amp": {"posterior error": 0.3, "prior error": 0.33}}
    inv.save(root / "model.joblib")
    save_wav(store.waveforms()[int(store.split_indices("test")[0])], root / "target.wav", store.sample_rate)
    return root


def invert(ws: Path, *extra: str) -> list[str]:
    return ["invert", "--model", str(ws / "model.joblib"), "--generator", TOY, "--target", str(ws / "target.wav"), "--n", "16", "--draws", "32", *extra]


@pytest.fixture(scope="module")
def report(ws) -> tuple[Path, int, str]:
    """``(page, exit status, stdout)`` of ``invert --report``."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(invert(ws, "--out", str(ws / "c.json"), "--report", str(ws / "page.html")))
    return ws / "page.html", code, buf.getvalue()


def test_invert_report_writes_the_page_with_the_json(report):
    path, code, out = report
    assert code == 0 and f"wrote {path.parent / 'c.json'} and {path}" in out, out
    text = path.read_text()
    tags = [t for t, _ in Tags(text).tags]
    assert tags.count("audio") == 17 and tags.count("img") == 17
    assert "Which parameters the model learnt" in text and "posterior error" in text and "chance: the best of 32 random parameter sets" in text


def test_invert_report_inside_the_models_store_is_refused_before_any_work(ws, tmp_path, capsys):
    before = sorted(p.name for p in (ws / "store").iterdir())
    code = main(invert(ws, "--out", str(tmp_path / "c.json"), "--report", str(ws / "store" / "page.html")))
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "inside the store the model was fitted on" in err, err
    assert sorted(p.name for p in (ws / "store").iterdir()) == before and not (tmp_path / "c.json").exists()


# -- a real browser -----------------------------------------------------------------------------
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

# every <audio> loads its clip, has a length and no error, and plays (muted); every <img> decodes
CHECK = """async () => {
  const settle = (p, ms) => Promise.race([p, new Promise(r => setTimeout(() => r('timed out'), ms))]);
  const audios = [...document.querySelectorAll('audio')];
  const loaded = await Promise.all(audios.map(a => settle(new Promise(resolve => {
    const report = () => resolve({duration: a.duration, error: a.error ? a.error.code : null});
    if (a.readyState >= 4 || a.error) return report();
    a.addEventListener('canplaythrough', report, {once: true});
    a.addEventListener('error', report, {once: true});
  }), 20000)));
  const played = [];
  for (const a of audios) {
    a.muted = true;
    try { await settle(a.play(), 10000); played.push(!a.paused); a.pause(); } catch (e) { played.push(String(e)); }
  }
  const images = await Promise.all([...document.images].map(i => settle(i.decode().then(() => i.naturalWidth, e => String(e)), 10000)));
  return {loaded, played, images};
}"""


def system_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -c constraints.txt -e '.[dev]'")
    path = system_chromium()
    if path is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (the browser test never downloads one)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=BROWSER_ARGS)
        yield b
        b.close()


def open_in_browser(browser, path: Path) -> dict:
    """Load ``path``; return what CHECK saw, the console errors, the requests and any dialog the page opened."""
    page = browser.new_page()
    seen = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url[:40]))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    try:
        page.goto(path.as_uri(), wait_until="load")
        seen.update(page.evaluate(CHECK))
        seen["shown"] = page.inner_text("body")
    finally:
        page.close()
    return seen


def assert_plays(seen: dict, n_clips: int, n_images: int) -> None:
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen["requests"]
    assert len(seen["loaded"]) == n_clips and len(seen["images"]) == n_images
    for clip in seen["loaded"]:
        assert isinstance(clip, dict) and clip["error"] is None and clip["duration"] > 0, clip
    assert seen["played"] == [True] * n_clips, seen["played"]
    assert all(isinstance(w, int) and w > 0 for w in seen["images"]), seen["images"]


@pytest.mark.parametrize("make, clips", [(synth100_page, 17), (long_clip_page, 17), (hostile_page, 1)], ids=["synth100-k16-wav", "long-clips-vorbis", "hostile-names"])
def test_the_page_plays_in_chromium(browser, tmp_path, make, clips):
    page = make()
    path = tmp_path / "page.html"
    size = write_page(path, page)
    assert size == path.stat().st_size
    seen = open_in_browser(browser, path)
    assert_plays(seen, clips, len(page.sections[0].candidates) + 1)
    if make is hostile_page:
        assert all(name in seen["shown"] for name in HOSTILE[1:])


def test_the_invert_report_plays_in_chromium(browser, report):
    assert report[1] == 0
    assert_plays(open_in_browser(browser, report[0]), 17, 17)
