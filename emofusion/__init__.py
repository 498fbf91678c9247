"""emofusion: command line, training, captioning and demo code on top of `modeling_emofusion`."""

from modeling_emofusion import __version__


__all__ = ["__version__"]
