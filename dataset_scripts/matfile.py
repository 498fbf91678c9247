"""Stream the elements of a top-level MATLAB struct array, one at a time.

`scipy.io.loadmat` reads a variable whole: for EMOTIC's `train` that is every image and person
of the split as Python objects (about 3.4 KB a person). `iter_struct_array` walks the same file
with scipy's own MAT-file v5 readers, but decodes one struct element (one EMOTIC image with its
persons) at a time from the (zlib-streamed) variable, so memory does not grow with the split.
Each element is exactly what `loadmat(path, squeeze_me=True, struct_as_record=False)[name][i]`
holds. Files scipy cannot stream this way (an unexpected layout, another scipy internals
version) fall back to `loadmat` for that variable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datasets.utils import logging


logger = logging.get_logger(__name__)

_MX_STRUCT_CLASS = 2
_MI_MATRIX = 14


def _loadmat_elements(path: Path, name: str) -> list:
    from scipy.io import loadmat

    contents = loadmat(str(path), squeeze_me=True, struct_as_record=False, variable_names=[name])
    if name not in contents:
        raise KeyError(name)
    value = contents[name]
    return list(value.flat) if isinstance(value, np.ndarray) else [value]


def _stream_elements(handle, name: str) -> Iterator:
    from scipy.io.matlab._mio5 import MatFile5Reader
    from scipy.io.matlab._mio5_params import mat_struct

    reader = MatFile5Reader(handle, squeeze_me=True, struct_as_record=False, chars_as_strings=True)
    reader.initialize_read()
    reader.read_file_header()
    while not reader.end_of_stream():
        header, next_position = reader.read_var_header()
        variable = "None" if header.name is None else header.name.decode("latin1")
        if variable != name:
            handle.seek(next_position)
            continue
        if header.mclass != _MX_STRUCT_CLASS:
            raise TypeError(f"variable {name!r} is not a struct array")
        matrix = reader._matrix_reader
        field_names = matrix.read_fieldnames()
        for _ in range(math.prod(header.dims)):
            element = mat_struct()
            element._fieldnames = field_names
            for field in field_names:
                mdtype, byte_count = matrix.read_full_tag()
                if byte_count == 0:  # an empty matrix, as loadmat squeezes it
                    value = np.array([])
                else:
                    if mdtype != _MI_MATRIX:
                        raise TypeError(f"field {field!r}: expected a matrix element, got type {mdtype}")
                    value = matrix.array_from_header(matrix.read_header(False), True)
                element.__dict__[field] = value
            yield element
        return
    raise KeyError(name)


def iter_struct_array(path: str | Path, name: str) -> Iterator:
    """Yield the elements of the top-level struct array `name` of a MAT-file, one at a time.

    Raises KeyError when the file has no variable `name`.

    >>> for image in iter_struct_array("/data/EMOTIC/Annotations/Annotations.mat", "train"):  # doctest: +SKIP
    ...     print(image.filename, image.folder)
    """
    path = Path(path)
    with open(path, "rb") as handle:
        stream = _stream_elements(handle, name)
        try:
            first = next(stream)
        except StopIteration:
            return
        except KeyError:
            raise
        except Exception as err:  # scipy internals differ: read the variable whole instead
            logger.info("%s: streaming %r failed (%s: %s); reading it whole.", path, name, type(err).__name__, err)
            yield from _loadmat_elements(path, name)
            return
        yield first
        yield from stream
