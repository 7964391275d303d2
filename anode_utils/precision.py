"""Float32 precision of GPU convolutions and matrix products: set it, and read it back.

On NVIDIA GPUs since Ampere, PyTorch lets cuDNN run float32 convolutions in TF32 by default
(10-bit mantissa, ~1e-3 relative precision). That is the size of the solver tolerance the
paper uses (rtol = atol = 1e-3), so TF32 can change adaptive step counts (NFE) and with them
the curves being reproduced. The image command line therefore runs in full float32 unless
asked otherwise, and records these settings beside its results. On the CPU none of them
has any effect.
"""

import torch


def configure(tf32=False):
    """Full float32 (``tf32=False``: the default for paper-comparable runs) or TF32 for both
    cuDNN convolutions and CUDA matrix products. Returns :func:`settings`."""
    tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return settings()


def _get(obj, *names):
    for name in names:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj if isinstance(obj, (bool, str, int)) else str(obj)


def settings():
    """The switches that decide float32 numerics on a GPU, as a JSON-ready dict.

    ``cudnn_allow_tf32`` / ``cuda_matmul_allow_tf32`` and ``float32_matmul_precision`` are the
    classic switches; ``*_fp32_precision`` the newer per-backend ones (``'ieee'``, ``'tf32'``
    or ``'none'`` = follow the classic switch; absent in older torch).
    """
    return {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_conv_fp32_precision": _get(
            torch.backends.cudnn, "conv", "fp32_precision"
        ),
        "cuda_matmul_fp32_precision": _get(
            torch.backends.cuda, "matmul", "fp32_precision"
        ),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
    }


__all__ = ["configure", "settings"]
