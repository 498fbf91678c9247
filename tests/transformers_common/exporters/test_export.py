"""Stand-in for transformers' tests/exporters/test_export.py, which its source distribution does not ship.

`ModelTesterMixin` derives from `ExportTesterMixin`; the export tests it would add (ONNX, OpenVINO,
ExecuTorch, ...) need those back-ends. emofusion tests `torch.export` and `torch.compile` itself
(tests/test_transformers_common.py).
"""


class ExportTesterMixin:
    pass
