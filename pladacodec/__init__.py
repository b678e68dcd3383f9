"""pladacodec: a whole image-classification task in a few kilobytes (PLADA).

The codec core (this package's top level) needs only numpy, numba,
constriction and crc32c; torch-based adapters load lazily on first use.

>>> import pladacodec
>>> blob = pladacodec.encode([5, 1, 9], [2, 0, 2], n_reference=10, n_classes=3)
>>> pladacodec.decode(blob).indices.tolist()
[1, 5, 9]
"""

from __future__ import annotations

from ._api import Payload as Payload
from ._api import TaskInfo as TaskInfo
from ._api import decode as decode
from ._api import encode as encode
from ._api import inspect as inspect
from ._api import methods_for_version as methods_for_version
from ._api import read as read
from ._api import read_header as read_header
from ._api import write as write
from ._spec import VERSION_MAJOR, VERSION_MINOR
from .folders import FolderLayout as FolderLayout
from ._stream import StreamReader as StreamReader
from ._stream import StreamWriter as StreamWriter
from ._stream import iter_read as iter_read
from ._stream import write_stream as write_stream
from .client import export as export
from .reference import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .reference import PladaReferenceWarning as PladaReferenceWarning
from .reference import Reference as Reference
from .reference import dataset_fingerprint as dataset_fingerprint
from .reference import fingerprint as fingerprint
from .reference import list_reference as list_reference
from .selection import STRATEGIES as STRATEGIES
from .selection import PladaSelectionError as PladaSelectionError
from .selection import Scores as Scores
from .selection import Selection as Selection
from .selection import load_scores as load_scores
from .selection import safety_net_quotas as safety_net_quotas
from .selection import select as select
from .selection import select_budget as select_budget
from .errors import PladaChecksumError as PladaChecksumError
from .errors import PladaDecodeError as PladaDecodeError
from .errors import PladaEncodeError as PladaEncodeError
from .errors import PladaError as PladaError
from .errors import PladaFormatError as PladaFormatError
from .errors import PladaMemoryError as PladaMemoryError
from .errors import PladaReferenceError as PladaReferenceError
from .errors import PladaTruncatedError as PladaTruncatedError
from .errors import PladaVersionError as PladaVersionError

__version__ = "0.1.0"
FORMAT_VERSION = (VERSION_MAJOR, VERSION_MINOR)

# Names served lazily from modules that import torch (so `import pladacodec` never does).
_LAZY = {
    "PladaDataset": ".data:PladaDataset",
    "LabelledFolder": ".data:LabelledFolder",
    "load_teacher": ".teacher:load_teacher",
    "load_efficientnet_lite0_pretrained": ".teacher:load_efficientnet_lite0_pretrained",
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'pladacodec' has no attribute {name!r}")
    import importlib

    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name, __name__), attr)
    globals()[name] = value
    return value
