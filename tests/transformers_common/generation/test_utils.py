"""Stand-in for transformers' tests/generation/test_utils.py, which its source distribution does not ship.

`test_modeling_common.py` only checks whether a tester derives from `GenerationTesterMixin`: emofusion's
models cannot generate, so its testers do not.
"""


class GenerationTesterMixin:
    pass
