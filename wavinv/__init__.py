"""wavinv: invert parametric audio generators.

Give it a spectrogram or a clip; get several candidate parameter sets, each
re-rendered by the generator and ranked by how close it really sounds.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    GeneratorError,
    InputError,
    ModelError,
    OutputError,
    ParamSpaceError,
    RenderError,
    StoreError,
    WavinvError,
)
from .generators import FunctionGenerator, Generator, load_generator  # noqa: E402
from .params import Param, ParamSpace  # noqa: E402
from .store import open_store  # noqa: E402

__all__ = [
    "__version__",
    "FunctionGenerator",
    "Generator",
    "GeneratorError",
    "InputError",
    "ModelError",
    "OutputError",
    "Param",
    "ParamSpace",
    "ParamSpaceError",
    "RenderError",
    "StoreError",
    "WavinvError",
    "load_generator",
    "open_store",
]
