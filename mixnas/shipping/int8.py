"""int8 files of a trained model, where its quantization policy asks for 8 bits (or fewer).

What runs in int8 today, and is therefore what is shipped (`predictors.quantize`,
docs/quantization.md): torch's dynamic quantization on the CPU (``quantize_dynamic``: every
``nn.Linear`` of a part whose policy has <= 8-bit weights stores int8 weights and quantizes its
activations on the fly; convolutions, norms and FFTs stay float). It needs no calibration data,
which a shipping machine may not have. Two files:

* ``model.int8.pt``: TorchScript of that model, exactly what the search's ``latency`` evaluator
  timed for the spec (checked against the eager int8 model within `mixnas.export.ATOL`);
* ``model.int8.onnx``: ONNX Runtime's ``quantize_dynamic`` of the float ONNX file, on its
  ``MatMul``/``Gemm`` nodes (the ONNX form of the Linear layers), for deployment with ONNX Runtime.
  It quantizes every such node, not only those of the policy's 8-bit parts: a spec with mixed
  bits gets the float parts quantized too (said in ``scope``).

Neither is the spec's exact numerics (per-channel 8-bit fake quantization of weights and
activations with calibrated ranges): that is why the test-split accuracy of each file is measured
beside the float model's when the training data is at hand, and recorded.

A policy below 8 bits runs on the int8 kernels (the closest thing that executes), and says so.
When no backend can run int8 here, the result is one line (``status: unsupported``), not an error.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

from mixnas.export import ATOL, RTOL, ExportError
from predictors.quantize import INT8_MAX_BITS, wants_int8

log = logging.getLogger(__name__)
INT8_TS, INT8_ONNX = "model.int8.pt", "model.int8.onnx"
MODES = ("auto", "on", "off")


def policy_summary(spec: Any) -> dict[str, Any]:
    """The weight bits of the spec's parts: ``{"blocks": [...], "boundary": b, "min": b}``."""
    blocks = [b.quant.weight_bits for stage in spec.stages for b in stage.blocks]
    boundary = spec.boundary_quant.weight_bits
    return {"blocks": blocks, "boundary": boundary, "min": min([*blocks, boundary])}


def int8_request(spec: Any, mode: str) -> tuple[str | None, str]:
    """The timing dtype int8 export uses (``auto``: the parts the policy puts at <= 8 bits;
    ``int8``: every part) and why; (None, why) when no int8 file is wanted."""
    asks = wants_int8(spec.boundary_quant, "auto") or any(
        wants_int8(b.quant, "auto") for stage in spec.stages for b in stage.blocks
    )
    if mode == "off":
        return None, "off (--no-int8)"
    if mode == "on" and not asks:
        return "int8", "asked by --int8 (the policy is float: every part is quantized)"
    if not asks:
        return None, "not asked: the spec's policy has no part at <= 8-bit weights"
    return "auto", "asked by the spec's policy (parts at <= 8-bit weights)"


def torch_int8_unsupported() -> str | None:
    """Why torch cannot run dynamic int8 here, or None when it can."""
    import torch

    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        return "torch has no quantized engine on this machine (fbgemm, x86, onednn, qnnpack)"
    return None


def onnx_int8_unsupported() -> str | None:
    """Why ONNX Runtime's quantizer cannot be used here, or None when it can."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return "onnxruntime.quantization is not installed (pip install 'mixnas[export]')"
    return None


def int8_torch_model(model: Any, spec: Any, dtype: str) -> tuple[Any, int]:
    """A copy of the trained float ``model`` with the int8 kernels ``dtype`` asks for, and how
    many Linear layers became int8."""
    from predictors.quantize import prepare_model

    quantized = prepare_model(copy.deepcopy(model), spec, dtype).eval()
    count = sum(1 for m in quantized.modules() if type(m).__name__ == "Linear" and _is_int8(m))
    return quantized, count


def _is_int8(module: Any) -> bool:
    # torch.ao's dynamic Linear is named Linear too; it keeps its weights packed, not as a Parameter
    return hasattr(module, "_packed_params")


def write_int8(
    model: Any, spec: Any, out: Path, dtype: str, onnx_path: Path | None, *, torchscript: bool
) -> dict[str, Any]:
    """Writes the int8 files (see the module docstring) into ``out``; returns the ``int8``
    entry of ship.json without accuracy (`int8_accuracy` adds it)."""
    import torch

    from search_space import example_input

    entry: dict[str, Any] = {"dtype": dtype, "policy": policy_summary(spec), "notes": []}
    if policy_summary(spec)["min"] < INT8_MAX_BITS:
        entry["notes"].append(
            f"the policy asks for {policy_summary(spec)['min']}-bit weights; no CPU kernels "
            "run below 8 bits, so int8 is the closest that executes"
        )
    x = example_input(spec, batch_size=2, seed=0)
    with torch.no_grad():
        reference = model(x).numpy()
    reasons = []
    if torchscript:
        why = torch_int8_unsupported()
        if why is None:
            quantized, count = int8_torch_model(model, spec, dtype)
            if count:
                entry["torchscript"] = _write_torchscript(quantized, x, reference, out / INT8_TS)
                entry["torchscript"]["int8_linear_layers"] = count
            else:
                why = "no nn.Linear under an 8-bit part: torch's dynamic int8 covers Linear only"
        if why is not None:
            entry["torchscript"] = {"unsupported": why}
            reasons.append(f"torch: {why}")
    if onnx_path is not None:
        why = onnx_int8_unsupported()
        if why is None:
            entry["onnx"] = _write_onnx(onnx_path, out / INT8_ONNX, x, reference)
        else:
            entry["onnx"] = {"unsupported": why}
            reasons.append(f"ONNX Runtime: {why}")
    written = [k for k in ("torchscript", "onnx") if k in entry and "path" in entry[k]]
    entry["status"] = "written" if written else "unsupported"
    if not written:
        entry["reason"] = "; ".join(reasons) or "no format was asked for"
    return entry


def _write_torchscript(quantized: Any, x: Any, reference: Any, path: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing quantized modules warns about constants
        want = quantized(x).numpy()
        torch.jit.trace(quantized, x, check_trace=False).save(str(path))
        got = torch.jit.load(str(path))(x).numpy()
    if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
        raise ExportError(
            f"{path}: int8 TorchScript output differs from the eager int8 model "
            f"(max abs diff {float(np.max(np.abs(got - want)))})"
        )
    return {
        "path": path.name,
        "bytes": path.stat().st_size,
        "max_abs_diff": float(np.max(np.abs(got - want))),
        "vs_fp32_max_abs_diff": float(np.max(np.abs(got - reference))),
    }


def _write_onnx(source: Path, path: Path, x: Any, reference: Any) -> dict[str, Any]:
    import numpy as np
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice to pre-process on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(path),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    finally:
        root.setLevel(level)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return {
        "path": path.name,
        "bytes": path.stat().st_size,
        "vs_fp32_max_abs_diff": float(np.max(np.abs(got - reference))),
        "scope": "every MatMul/Gemm node (ONNX Runtime dynamic int8 weights and activations)",
    }


def accuracy(
    model: Any,
    spec: Any,
    x: Any,
    y: Any,
    *,
    int8_dtype: str | None,
    onnx_files: dict[str, Path],
) -> dict[str, float | str]:
    """Top-1 (%) on ``x, y`` of the float model and of each shipped variant: torch int8 (the
    eager model the int8 TorchScript was traced from, when ``int8_dtype``) and every ONNX file of
    ``onnx_files`` (name -> path). A file ONNX Runtime cannot run at this batch (one exported
    with a fixed batch) gets its reason instead of a number."""
    import numpy as np
    import torch

    def top1(logits: Any) -> float:
        return float((np.asarray(logits).argmax(axis=1) == y.numpy()).mean() * 100.0)

    def batched(fn: Any) -> Any:
        return np.concatenate([fn(x[i : i + 256]) for i in range(0, len(x), 256)])

    def torch_fn(m: Any) -> Any:
        def run(batch: Any) -> Any:
            with torch.no_grad():
                return m(batch).numpy()

        return run

    result: dict[str, float | str] = {"fp32_torch": top1(batched(torch_fn(model)))}
    if int8_dtype is not None:
        quantized, _ = int8_torch_model(model, spec, int8_dtype)
        result["int8_torch"] = top1(batched(torch_fn(quantized)))
    for name, path in onnx_files.items():
        try:
            result[name] = top1(batched(_onnx_fn(path)))
        except Exception as err:  # e.g. a file whose batch axis is fixed
            result[name] = f"not measured: {str(err).strip().splitlines()[0]}"
    return result


def _onnx_fn(path: Path) -> Any:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch.numpy()})[0]
