"""wavinv: invert parametric audio generators.

Give it a spectrogram or a clip; get several candidate parameter sets, each
re-rendered by the generator and ranked by how close it really sounds.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    GeneratorError,
    InputError,
    MismatchError,
    ModelError,
    OutputError,
    ParamSpaceError,
    RenderError,
    StoreError,
    TimeLimitError,
    WavinvError,
)
from .generators import FunctionGenerator, Generator, load_generator  # noqa: E402
from .params import Param, ParamSpace  # noqa: E402
from .store import open_store  # noqa: E402

# Names a user needs whose modules import torch, joblib or matplotlib: imported on first use,
# so ``import wavinv`` (and ``wavinv --help``) stays quick. ``from wavinv import load`` works.
_LAZY = {
    "load": "inverter",
    "fit_inverter": "inverter",
    "Inverter": "inverter",
    "Inversion": "inverter",
    "Target": "targets",
    "load_target": "targets",
    "save_wav": "targets",
    "save_spectrogram_png": "targets",
    "Spectrogram": "frontend",
    "spectrogram": "frontend",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wavinv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    *_LAZY,
    "FunctionGenerator",
    "Generator",
    "GeneratorError",
    "InputError",
    "MismatchError",
    "ModelError",
    "OutputError",
    "Param",
    "ParamSpace",
    "ParamSpaceError",
    "RenderError",
    "StoreError",
    "TimeLimitError",
    "WavinvError",
    "load_generator",
    "open_store",
]
