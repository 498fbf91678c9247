import os

import pytest
import torch


# Nothing in the test suite may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n N` each worker already has a core: extra torch/OpenMP threads (here and in
    # the scripts tests start) would only compete with the other workers for it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def restore_library_verbosity():
    """In-process training sets transformers' and datasets' verbosity as the scripts do (INFO on the main
    process); put it back after each test, so that later tests see the libraries' defaults."""
    import datasets
    import transformers

    before = transformers.utils.logging.get_verbosity(), datasets.utils.logging.get_verbosity()
    yield
    transformers.utils.logging.set_verbosity(before[0])
    datasets.utils.logging.set_verbosity(before[1])


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models' matmuls are too small to share among threads; on a busy 2-core machine extra
    threads only wait. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_configure(config):
    # The markers transformers' own common tests carry (vendored in tests/transformers_common/).
    markers = ("accelerate_tests", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test", "torch_compile_test")
    for marker in markers:
        config.addinivalue_line("markers", f"{marker}: a transformers common-test marker")
