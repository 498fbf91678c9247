"""emofusion: command line, training, captioning and demo code on top of `modeling_emofusion`.

Importing it imports nothing heavy (no transformers, no torch), so that `emofusion --help` is
instant; the model classes are in `modeling_emofusion`, which registers them with transformers'
Auto classes when it is imported.
"""

from ._version import __version__


__all__ = ["__version__"]
