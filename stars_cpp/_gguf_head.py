"""Writes a causal reward model's head into GGUF metadata, with llama.cpp's own gguf-py.

Run as a script by :mod:`stars_cpp.convert_reward`, with the converter's ``gguf-py`` first on
``PYTHONPATH``, so the same gguf library that wrote the backbone copies it (the installed
``gguf`` package, if any, may be another version). Imports only the standard library at module
level.

    python _gguf_head.py add IN.gguf OUT.gguf HEAD.json   # HEAD.json: {"weight", "bias", "row"}

(Reading it back is done in-process through ggml's C gguf API: ``convert_reward.read_head``.)
"""

from __future__ import annotations

import json
import sys

HEAD_WEIGHT_KEY = "stars.reward.head.weight"
HEAD_BIAS_KEY = "stars.reward.head.bias"
HEAD_ROW_KEY = "stars.reward.head.row"


def add_head(path_in: str, path_out: str, head: dict) -> None:
    """Copy ``path_in`` to ``path_out`` with the head keys added (tensors untouched), through
    gguf-py's ``gguf_new_metadata.copy_with_new_metadata``."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(path_in, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch is None:
        raise ValueError(f"{path_in} has no {gguf.Keys.General.ARCHITECTURE}")
    new = {
        HEAD_WEIGHT_KEY: MetadataDetails(gguf.GGUFValueType.ARRAY,
                                         [float(v) for v in head["weight"]],
                                         sub_type=gguf.GGUFValueType.FLOAT32),
        HEAD_ROW_KEY: MetadataDetails(gguf.GGUFValueType.INT32, int(head["row"])),
    }
    if head.get("bias") is not None:
        new[HEAD_BIAS_KEY] = MetadataDetails(gguf.GGUFValueType.FLOAT32, float(head["bias"]))
    # A file that already carries a head (a re-conversion) gets the new one.
    stale = [key for key in (HEAD_WEIGHT_KEY, HEAD_BIAS_KEY, HEAD_ROW_KEY)
             if key not in new and reader.get_field(key) is not None]
    writer = gguf.GGUFWriter(path_out, arch=arch.contents(), endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    copy_with_new_metadata(reader, writer, new, stale)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "add":
        with open(argv[3], encoding="utf-8") as f:
            add_head(argv[1], argv[2], json.load(f))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    # Run as a script, this file's directory (the stars_cpp package) is sys.path[0]; drop it so
    # that its modules cannot shadow what gguf-py imports.
    if sys.path and sys.path[0] and __file__.startswith(sys.path[0]):
        sys.path.pop(0)
    sys.exit(main(sys.argv[1:]))
