# The vendored files hold mixins, not tests: tests/test_transformers_common.py runs them.
collect_ignore_glob = ["*.py", "*/*.py"]
