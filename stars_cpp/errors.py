"""Every exception stars_cpp raises, defined here once.

The C++ extension raises these same classes: at import it looks each one up in this module by
name (``RegisterExceptions`` in ``cpp/python/module.cc``), so a C++ ``stars::ParameterError`` and
a Python-side check raise one ``ParameterError``. Each keeps the builtin base users expect, so
``except ValueError`` or ``except FileNotFoundError`` keep working.
"""

from __future__ import annotations


class StarsError(Exception):
    """Base of every stars_cpp error.

    ``param`` names the setting or field at fault (as the server's ``error.param``), or is None
    when no single one is."""

    def __init__(self, message: str = "", param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelLoadError(StarsError, ValueError):
    """A model file is empty, not a GGUF, malformed, or rejected by llama.cpp."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """A model path (a GGUF, a Hugging Face directory or a shard it names) does not exist."""


class ContextLengthError(StarsError, ValueError):
    """A prompt, or a prompt plus the tokens it may generate, does not fit the context."""


class DecodeError(StarsError, RuntimeError):
    """llama_decode failed (invalid batch, backend error) or found no KV slot."""


class ParameterError(StarsError, ValueError):
    """A parameter or an argument is out of range, of the wrong type, or unknown."""


class ChatTemplateError(StarsError, ValueError):
    """The model has no chat template, llama.cpp does not support it, or the messages are bad."""


class RewardError(StarsError):
    """A reward returned a wrong count or a non-finite value, or cannot be built."""


class ReentrantCallError(StarsError, RuntimeError):
    """A reward or callback called back into the Engine that is running it."""


class QueueFullError(StarsError):
    """The engine's queue holds ``max_queue`` requests already; try again later."""


class EngineClosedError(StarsError, RuntimeError):
    """The engine was closed; it takes no more requests."""


class DatasetError(ParameterError):
    """A dataset run cannot start: a bad file, or a resume with other parameters."""


class ConversionError(StarsError, RuntimeError):
    """Converting or quantizing a reward model failed in llama.cpp's tools."""


class SourceNotFoundError(ConversionError, FileNotFoundError):
    """llama.cpp's source tree, which holds its converter, cannot be found."""


def error_class(error: BaseException) -> dict:
    """How the front ends report ``error``: the core's error table entry (``name``,
    ``exit_code``, ``http_status``, ``http_type``) of the nearest class along its hierarchy;
    the table's catch-all (exit 1, HTTP 500) for an exception that is no stars error."""
    from stars_cpp import _core  # the extension imports this module first

    table = {entry["name"]: entry for entry in _core.ERROR_CLASSES}
    for cls in type(error).__mro__:
        if cls.__name__ in table and cls.__module__ == __name__:
            return table[cls.__name__]
    return table[""]


__all__ = [
    "ChatTemplateError", "ContextLengthError", "ConversionError", "DatasetError", "DecodeError",
    "EngineClosedError", "ModelLoadError", "ModelNotFoundError", "ParameterError",
    "QueueFullError", "ReentrantCallError", "RewardError", "SourceNotFoundError", "StarsError",
    "error_class",
]
