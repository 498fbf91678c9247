"""A prelude for subprocess scripts that must run as if emofusion were not installed.

emofusion may be pip-installed (CI installs it editable), so leaving the repository off the path
is not enough: the prelude makes the project's packages unimportable, so that only the code saved
next to a checkpoint (transformers' remote code) can run.
"""

import textwrap


BLOCK_PROJECT_IMPORTS = textwrap.dedent(
    """
    import importlib.util, sys

    class _BlockProject:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"modeling_emofusion", "emofusion", "dataset_scripts"}:
                raise ImportError(f"{name} is made unimportable for this test")

    sys.meta_path.insert(0, _BlockProject())
    for _name in ("modeling_emofusion", "emofusion", "dataset_scripts"):
        try:
            importlib.import_module(_name)
        except ImportError:
            pass
        else:
            raise AssertionError(f"{_name} is importable")
    """
)
