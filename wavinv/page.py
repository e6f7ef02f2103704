"""The HTML page to listen to: a target and its candidates side by side, to see, hear and compare.

One self-contained file (every picture and clip inside it as a ``data:`` URI, no
script, a Content-Security-Policy that loads nothing from elsewhere): each
section shows a target first, then its candidates, each with its spectrogram,
an audio player, its distances and its parameters in the generator's units,
and the scale that says what a distance means: the chance level and, where
known, the floor of that target. Every string on the page (parameter names come
from user generators) is escaped by the template engine.

Pictures are palette PNGs pooled to at most ``MAX_SIDE`` pixels a side; clips
are 16-bit WAV at the generator's rate, or Ogg Vorbis where a WAV would take
more than the clip's share of ``AUDIO_BUDGET`` (long clips, many of them), so a
page for one inversion with K=16 stays a few megabytes.
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .floor import DESCRIPTION as FLOOR_DESCRIPTION, floor_sentence
from .outputs import atomic_path
from .picture import grid_axes

__all__ = ["Clip", "Reference", "Section", "Page", "inversion_section", "page_html", "write_page"]

# pictures are pooled to at most this many pixels a side (a 512 x 512 picture shows at 256 x 256)
MAX_SIDE = 256
# bytes of audio the page may hold in all before clips are compressed (Ogg Vorbis instead of 16-bit WAV)
AUDIO_BUDGET = 2_500_000
COLORMAP = "magma"


@dataclass
class Clip:
    """One sound on the page: its picture ``(F, T)`` in dB, its clip (None: nothing to play), what it scored.

    ``params`` are natural-unit values in the section's parameter order (None: unknown, as a target's usually are).
    """

    title: str
    picture: np.ndarray
    audio: np.ndarray | None = None
    distances: Mapping[str, float] = field(default_factory=dict)
    params: Sequence[float] | None = None


@dataclass
class Reference:
    """A line of a section's scale: ``lsd_db`` of a candidate, of chance or of the floor, and what it is."""

    label: str
    lsd_db: float
    kind: str  # "candidate", "chance" or "floor"


@dataclass
class Section:
    """A target, its candidates best first, the scale they are read on and the parameter space they live in."""

    heading: str
    target: Clip
    candidates: list[Clip]
    space: Any  # a ParamSpace: names, units, ranges
    scale: list[Reference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    learnt: Mapping[str, Mapping[str, float]] | None = None  # parameter -> {column: value}: which parameters the model learnt


@dataclass
class Page:
    """A whole page: a title, facts about where it comes from, its sections, and how their clips sound and look."""

    title: str
    sections: list[Section]
    sample_rate: int
    n_samples: int
    picture: Mapping[str, Any] | None = None  # the picture's settings (``frontend`` of a model or store)
    facts: list[tuple[str, str]] = field(default_factory=list)


def inversion_section(
    result, truth: Sequence[float] | None = None, floor: Mapping[str, Any] | None = None, learnt: Mapping[str, Mapping[str, float]] | None = None
) -> Section:
    """A ``Section`` for an ``Inversion``: its target, every candidate, and its chance level when it has one.

    ``truth`` (natural units) is the target's parameters where known (a demo's held-out
    sound), ``floor`` what the same sound scores on the chance level's frames and which
    render of them that is (``Inverter.floor_level``); ``learnt`` the model's per-parameter view
    of what it learnt.
    """
    target = Clip("target", result.target_spectrogram, result.target.waveform, params=truth)
    cands = [
        Clip(f"#{i + 1}", result.spectrograms[i], result.waveforms[i], {k: float(v[i]) for k, v in result.distances.items()}, result.params[i])
        for i in range(len(result.params))
    ]
    scale, notes = [], []
    c = result.chance
    if c:
        scale = [
            Reference(f"#1, scored on {c['frames']}", c["best_lsd_db"], "candidate"),
            Reference(f"chance: the best of {c['draws']} random parameter sets, on the same frames", c["lsd_db"], "chance"),
        ]
    else:
        notes.append("No chance level was measured for this inversion (--no-chance).")
    if c and floor is not None:
        scale.append(Reference(f"floor: {FLOOR_DESCRIPTION[floor['kind']]}, on the same frames", floor["lsd_db"], "floor"))
        notes.append(floor_sentence(floor))
    elif c:
        notes.append("The floor (what the same sound scores) needs the target's true parameters: wavinv bench measures it on held-out sounds.")
    if result.target.waveform is None:
        notes.append("The target is a picture: there is no clip of it to play.")
    head = f"{result.target.source}: {len(cands)} candidates, best first"
    return Section(head, target, cands, result.space, scale, notes, learnt)


def write_page(path: "str | os.PathLike", page: Page) -> int:
    """Write ``page`` to ``path`` whole (a temporary file renamed into place) and return its size in bytes.

    A failed write raises ``OutputError`` and leaves no partial file.
    """
    text = page_html(page).encode("utf-8")
    with atomic_path(path) as tmp:
        tmp.write_bytes(text)
    return len(text)


def page_html(page: Page) -> str:
    """The page as one HTML document."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    axes = grid_axes(page.picture, page.sample_rate, page.n_samples)
    db_range = axes["db_range"]
    clips = [c for s in page.sections for c in [s.target, *s.candidates] if c.audio is not None]
    gain = _common_gain(clips)
    share = AUDIO_BUDGET // max(1, len(clips))
    sections = [_section_view(s, db_range, page.sample_rate, share, gain) for s in page.sections]
    codecs = sorted({c["audio"][1] for s in sections for c in s["clips"] if c["audio"]})
    audio_note = _audio_note(codecs, page.sample_rate, gain)
    return env.from_string(_TEMPLATE).render(
        title=page.title,
        facts=page.facts,
        sections=sections,
        axes={
            "x": ("0 s", f"{axes['duration']:.2f} s") if axes["duration"] else ("start", "end"),
            "y": (f"{axes['sample_rate'] / 2000:g} kHz", "0") if axes["sample_rate"] else ("high", "low"),
        },
        colorbar=_colorbar_css(),
        db_range=(f"{db_range[0]:g}", f"{db_range[1]:g}"),
        audio_note=audio_note,
        style=Markup(_STYLE),
    )


# -- pictures and clips ----------------------------------------------------------------------
def _palette() -> list[int]:
    import matplotlib

    lut = matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3]
    return [int(round(v * 255)) for v in lut.reshape(-1)]


def _colorbar_css() -> str:
    pal = np.asarray(_palette()).reshape(256, 3)
    stops = [f"rgb({r},{g},{b}) {100 * i / 255:.0f}%" for i, (r, g, b) in ((i, pal[i]) for i in range(0, 256, 32))]
    stops.append(f"rgb({pal[255][0]},{pal[255][1]},{pal[255][2]}) 100%")
    return "linear-gradient(to right, " + ", ".join(stops) + ")"


def _pooled(spec: np.ndarray) -> np.ndarray:
    """``spec`` averaged over blocks so that no side exceeds ``MAX_SIDE`` (edges padded by repetition)."""
    spec = np.nan_to_num(np.asarray(spec, dtype=np.float32), nan=-1e3, posinf=0.0, neginf=-1e3)
    fy, fx = (max(1, math.ceil(n / MAX_SIDE)) for n in spec.shape)
    if fy == fx == 1:
        return spec
    F, T = (math.ceil(n / f) * f for n, f in zip(spec.shape, (fy, fx)))
    spec = np.pad(spec, ((0, F - spec.shape[0]), (0, T - spec.shape[1])), mode="edge")
    return spec.reshape(F // fy, fy, T // fx, fx).mean(axis=(1, 3))


def _png_uri(spec: np.ndarray, db_range: tuple[float, float]) -> str:
    """A palette PNG of a dB picture, low frequencies at the bottom, as a ``data:`` URI."""
    from PIL import Image

    lo, hi = db_range
    level = np.clip((_pooled(spec) - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)[::-1]
    img = Image.fromarray(np.ascontiguousarray(level))
    img.putpalette(_palette())
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _common_gain(clips: Sequence[Clip]) -> float:
    """One gain for every clip of the page: 1, or less where the loudest would clip (levels stay comparable)."""
    peak = max((float(np.max(np.abs(c.audio))) for c in clips if np.size(c.audio)), default=0.0)
    return 1.0 / peak if peak > 1.0 else 1.0


def _audio_uri(wave: np.ndarray, sample_rate: int, budget: int, gain: float) -> tuple[str, str]:
    """``(data URI, codec)``: 16-bit WAV, or Ogg Vorbis where the WAV would take more than ``budget`` bytes."""
    import soundfile as sf

    wave = np.clip(np.nan_to_num(np.asarray(wave, dtype=np.float32) * gain), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, wave, int(sample_rate), format="WAV", subtype="PCM_16")
    mime, codec = "audio/wav", "wav"
    if buf.tell() > budget:
        buf = io.BytesIO()
        sf.write(buf, wave, int(sample_rate), format="OGG", subtype="VORBIS")
        mime, codec = "audio/ogg", "vorbis"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii"), codec


def _audio_note(codecs: list[str], sample_rate: int, gain: float) -> str:
    kinds = {"wav": "16-bit WAV", "vorbis": "Ogg Vorbis (lossy, to keep the page small)"}
    note = f"Clips: mono, {sample_rate:,} Hz, " + " and ".join(kinds[c] for c in codecs) if codecs else "No clips to play."
    if gain < 1.0:
        note += f"; every clip turned down by {-20 * math.log10(gain):.1f} dB so that the loudest does not clip"
    return note + "."


# -- what the template shows -------------------------------------------------------------------
def _value(p, v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "?"
    text = f"{v:g}" if p.scale in ("int", "choice") else f"{v:.4g}"
    return f"{text} {p.unit}".strip()


def _unit_pos(p, v: float | None) -> float | None:
    """Where ``v`` lies in the parameter's range, 0 to 1 (the shading of its table cell)."""
    if v is None or not np.isfinite(v):
        return None
    return float(np.clip(p.to_unit(np.asarray([v]))[0], 0.0, 1.0))


def _clip_view(c: Clip, db_range, sample_rate: int, share: int, gain: float, is_target: bool) -> dict[str, Any]:
    audio = _audio_uri(c.audio, sample_rate, share, gain) if c.audio is not None else None
    lsd = c.distances.get("lsd_db")
    others = "  ".join(f"{k} {v:.3f}" for k, v in c.distances.items() if k != "lsd_db")
    return {
        "title": c.title,
        "png": _png_uri(c.picture, db_range),
        "audio": audio,
        "lsd": None if lsd is None else f"{lsd:.2f} dB",
        "others": others,
        "target": is_target,
    }


def _section_view(s: Section, db_range, sample_rate: int, share: int, gain: float) -> dict[str, Any]:
    clips = [_clip_view(s.target, db_range, sample_rate, share, gain, True)]
    clips += [_clip_view(c, db_range, sample_rate, share, gain, False) for c in s.candidates]
    # the target's column only where its parameters are known
    columns = [s.target, *s.candidates] if s.target.params is not None else list(s.candidates)
    rows = []
    for j, p in enumerate(s.space):
        cells = []
        for c in columns:
            v = None if c.params is None else float(c.params[j])
            cells.append({"text": _value(p, v), "u": _unit_pos(p, v)})
        rows.append({"name": p.name, "range": p.span, "cells": cells})
    top = max([r.lsd_db for r in s.scale] or [1.0]) * 1.08
    scale = [{"label": r.label, "value": f"{r.lsd_db:.2f}", "width": f"{100 * max(r.lsd_db, 0) / top:.1f}", "kind": r.kind} for r in s.scale]
    notes = list(s.notes)
    kinds = [r.kind for r in s.scale]
    if sorted(kinds) == ["candidate", "chance", "floor"]:  # one candidate on the scale of its chance and floor
        by_kind = {r.kind: r.lsd_db for r in s.scale}
        if by_kind["chance"] > by_kind["floor"]:
            closed = (by_kind["chance"] - by_kind["candidate"]) / (by_kind["chance"] - by_kind["floor"])
            beyond = ", above 1: #1 is closer to the target than the floor" if closed > 1 else ""
            notes.insert(0, f"Gap closed: {closed:.2f} (0 is chance, 1 is as close as the same sound{beyond}).")
    learnt = None
    if s.learnt:
        cols = list(dict.fromkeys(k for row in s.learnt.values() for k in row))
        learnt = {"columns": cols, "rows": [{"name": name, "cells": [_number(row.get(k)) for k in cols]} for name, row in s.learnt.items()]}
    return {
        "heading": s.heading,
        "clips": clips,
        "scale": scale,
        "notes": notes,
        "params": {"titles": [c.title for c in columns], "rows": rows, "open": len(rows) <= 12, "truth": s.target.params is not None},
        "learnt": learnt,
    }


def _number(v) -> str:
    if isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v):
        return f"{v:.3g}"
    return "" if v is None else str(v)


_STYLE = """
:root { --ink: #1d1d24; --muted: #5b5b6b; --line: #dcdce4; --accent: #7a2ea0; --chance: #9a9aa8; --floor: #2f8f5b; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); margin: 0; background: #f6f6f9; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.5rem; margin: 0 0 8px; }
h2 { font-size: 1.15rem; margin: 0 0 12px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 14px; font-size: .9rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.legend { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 22px; font-size: .85rem; color: var(--muted); }
.colorbar { display: inline-block; width: 160px; height: 12px; border-radius: 2px; vertical-align: middle; margin: 0 6px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 20px; margin: 20px 0; }
.notes { margin: 6px 0 12px; padding-left: 18px; font-size: .88rem; color: var(--muted); }
.scale { display: grid; grid-template-columns: minmax(180px, max-content) 1fr 4.5em; gap: 4px 10px; align-items: center; margin: 4px 0 10px; font-size: .88rem; }
.scale .track { background: #f0f0f4; height: 14px; border-radius: 3px; }
.scale .bar { height: 100%; border-radius: 3px; background: var(--accent); }
.scale .bar.chance { background: var(--chance); }
.scale .bar.floor { background: var(--floor); }
.scale .val { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px; background: #fcfcfe; }
.card.target { border: 2px solid var(--accent); background: #fbf6fe; }
.card h3 { font-size: .95rem; margin: 0 0 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .dist { color: var(--muted); font-variant-numeric: tabular-nums; font-size: .8rem; margin: 0 0 6px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .dist b { color: var(--ink); font-weight: 600; }
.fig { display: grid; grid-template-columns: auto 1fr; grid-template-rows: auto auto; column-gap: 4px; }
.fig img { width: 100%; aspect-ratio: 1 / 1; display: block; image-rendering: auto; border-radius: 2px; }
.yaxis { display: flex; flex-direction: column; justify-content: space-between; font-size: .7rem; color: var(--muted); text-align: right; }
.xaxis { grid-column: 2; display: flex; justify-content: space-between; font-size: .7rem; color: var(--muted); }
audio { width: 100%; margin-top: 6px; height: 36px; }
.silent { font-size: .8rem; color: var(--muted); margin-top: 6px; }
details { margin-top: 16px; }
summary { cursor: pointer; font-weight: 600; }
.tablewrap { overflow-x: auto; margin-top: 8px; }
table { border-collapse: collapse; font-size: .82rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; position: sticky; left: 0; background: #fff; }
td.range { color: var(--muted); text-align: left; }
th.range { text-align: left; }
td.v { background: linear-gradient(to right, #e6dcf0 calc(var(--u) * 100%), transparent 0); }
th.target, td.target { border-left: 2px solid var(--accent); }
footer { font-size: .82rem; color: var(--muted); margin-top: 24px; }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>{{ style }}</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
{% if facts %}
<dl class="facts">
{% for k, v in facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>
{% endfor %}
</dl>
{% endif %}
<div class="legend">
<span>Spectrograms: low frequencies at the bottom; {{ db_range[0] }} dB<span class="colorbar" style="background: {{ colorbar }}"></span>{{ db_range[1] }} dB</span>
<span>{{ audio_note }}</span>
</div>
{% for s in sections %}
<section>
<h2>{{ s.heading }}</h2>
{% if s.scale %}
<div class="scale" role="table" aria-label="lsd_db on the scale of this target">
{% for r in s.scale %}
<div>{{ r.label }}</div><div class="track"><div class="bar {{ r.kind }}" style="width: {{ r.width }}%"></div></div><div class="val">{{ r.value }} dB</div>
{% endfor %}
</div>
{% endif %}
{% if s.notes %}<ul class="notes">{% for n in s.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<div class="cards">
{% for c in s.clips %}
<div class="card{% if c.target %} target{% endif %}">
<h3 title="{{ c.title }}">{{ c.title }}</h3>
<div class="dist">{% if c.target %}the sound to match{% else %}{% if c.lsd %}<b>lsd_db {{ c.lsd }}</b>{% endif %} {{ c.others }}{% endif %}</div>
<div class="fig"><div class="yaxis"><span>{{ axes.y[0] }}</span><span>{{ axes.y[1] }}</span></div><img src="{{ c.png }}" alt="spectrogram of {{ c.title }}"><div class="xaxis"><span>{{ axes.x[0] }}</span><span>{{ axes.x[1] }}</span></div></div>
{% if c.audio %}<audio controls preload="auto" src="{{ c.audio[0] }}"></audio>{% else %}<div class="silent">no clip to play</div>{% endif %}
</div>
{% endfor %}
</div>
{% if s.learnt %}
<details open>
<summary>Which parameters the model learnt</summary>
<div class="tablewrap"><table>
<tr><th>parameter</th>{% for col in s.learnt.columns %}<th>{{ col }}</th>{% endfor %}</tr>
{% for row in s.learnt.rows %}<tr><td>{{ row.name }}</td>{% for v in row.cells %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table></div>
</details>
{% endif %}
<details{% if s.params.open %} open{% endif %}>
<summary>Parameters ({{ s.params.rows | length }}), in the generator's units; shading: where each value lies in its range</summary>
<div class="tablewrap"><table>
<tr><th>parameter</th><th class="range">range</th>{% for t in s.params.titles %}<th{% if loop.first and s.params.truth %} class="target"{% endif %}>{{ t }}</th>{% endfor %}</tr>
{% for row in s.params.rows %}<tr><td>{{ row.name }}</td><td class="range">{{ row.range }}</td>{% for c in row.cells %}<td class="{% if c.u is not none %}v{% endif %}{% if loop.first and s.params.truth %} target{% endif %}"{% if c.u is not none %} style="--u: {{ '%.3f' % c.u }}"{% endif %}>{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}
</table></div>
</details>
</section>
{% endfor %}
<footer>
lsd_db: log-spectral distance in dB between the target's spectrogram and a candidate's (lower is closer).
Chance: the best of as many random parameter sets; floor: what the same sound scores, the target's own parameters re-rendered with another noise seed, or their own render where parameters next to them reproduce its noise.
Made by wavinv.
</footer>
</main>
</body>
</html>
"""
