"""Copies of a GGUF with chosen defects, for tests of what llama.cpp would abort on.

``rewrite`` reads a file with the ``gguf`` package and writes a copy with some key-value
pairs replaced or removed and some tensors dropped or reshaped (data kept, zero-padded or cut).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import gguf
import numpy as np

# A replacement value: (GGUFValueType, value), or None to drop the key.
Field = tuple[gguf.GGUFValueType, object] | None


def _field_value(field: gguf.ReaderField) -> tuple[gguf.GGUFValueType, object]:
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        item = field.types[1]
        if item == gguf.GGUFValueType.STRING:
            values = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
        else:
            values = [field.parts[i].tolist()[0] for i in field.data]
        return kind, (item, values)
    if kind == gguf.GGUFValueType.STRING:
        return kind, bytes(field.parts[field.data[0]]).decode("utf-8")
    return kind, field.parts[field.data[0]].tolist()[0]


def rewrite(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    fields: Mapping[str, Field] | None = None,
    drop_tensors: Callable[[str], bool] | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> Path:
    """Copy ``src`` to ``dst`` with ``fields`` replaced (None drops one) and tensors changed.

    ``shapes`` gives new numpy shapes (outermost first) for float32 tensors by name.
    """
    fields = dict(fields or {})
    shapes = dict(shapes or {})
    reader = gguf.GGUFReader(src, "r")
    arch = _field_value(reader.get_field(gguf.Keys.General.ARCHITECTURE))[1]
    writer = gguf.GGUFWriter(dst, str(arch))
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == gguf.Keys.General.ARCHITECTURE:
            continue
        value = fields.pop(name) if name in fields else _field_value(field)
        if value is not None:
            _add(writer, name, value)
    for name, value in fields.items():
        if value is not None:
            _add(writer, name, value)
    for tensor in reader.tensors:
        if drop_tensors is not None and drop_tensors(tensor.name):
            continue
        data = np.array(tensor.data, dtype=np.float32)
        if tensor.name in shapes:
            shape = shapes[tensor.name]
            flat = np.zeros(int(np.prod(shape)), dtype=np.float32)
            n = min(flat.size, data.size)
            flat[:n] = data.reshape(-1)[:n]
            data = flat.reshape(shape)
        writer.add_tensor(tensor.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(dst)


def _add(writer: gguf.GGUFWriter, name: str, value: tuple[gguf.GGUFValueType, object]) -> None:
    kind, data = value
    if kind == gguf.GGUFValueType.ARRAY:
        item, values = data
        if item == gguf.GGUFValueType.STRING:
            writer.add_array(name, list(values))
        else:
            writer.add_key_value(name, list(values), kind, sub_type=item)
        return
    writer.add_key_value(name, data, kind)
