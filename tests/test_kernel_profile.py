"""The layouts bench's kernel profile: perf's symbols sorted into the classes its tables report
(attention's share of decode time rests on them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import kernel_profile as kp  # noqa: E402

F16_GEMM = ("(anonymous namespace)::tinyBLAS<16, float __vector(16), float __vector(16), "
            "unsigned short, unsigned short, float>::gemm<4, 2, 1>")
Q8_GEMM = "(anonymous namespace)::tinyBLAS_Q0_AVX<block_q8_0, block_q8_0, float>::gemm4xN<4>"
# (samples, library, symbol), from a SmolLM2 Q4_1 profile.
SAMPLES = [
    (998, "libggml-cpu.so.0", "ggml_vec_dot_q4_1_q8_1"),
    (499, "libggml-cpu.so.0", F16_GEMM),
    (100, "libggml-cpu.so.0", Q8_GEMM),
    (80, "libggml-cpu.so.0", "ggml_compute_forward_soft_max"),
    (60, "libggml-cpu.so.0", "ggml_vec_dot_f16"),
    (40, "libggml-cpu.so.0", "ggml_compute_forward_mul_mat"),
    (40, "libgomp.so.1.0.0", "0x000000000001f7da"),
    (20, "libc.so.6", "__memmove_avx512_unaligned_erms"),
    (20, "libggml-cpu.so.0", "0x000000000010a2d5"),
    (20, "libggml-cpu.so.0", "ggml_vec_swiglu_f32"),
    (20, "libpython3.11.so.1.0", "_PyEval_EvalFrameDefault"),
]
# As `perf report --stdio -q -n --sort dso,sym` prints them.
REPORT = "\n".join(f"    1.00%  {n:11d}  {dso:20s} [.] {symbol}" for n, dso, symbol in SAMPLES)
REPORT += "\n     0.50%           10  [kernel.kallsyms]  [k] exc_page_fault\n"


@pytest.mark.parametrize("dso, symbol, label", [
    ("libggml-cpu.so.0", "ggml_vec_dot_q4_K_q8_K", "weights"),
    ("libggml-cpu.so.0", "quantize_row_q8_1", "weights"),
    ("libggml-cpu.so.0", "(anonymous namespace)::tinyBLAS_Q0_AVX<block_q4_0, block_q8_0, float>"
                         "::gemm<1, 1>", "weights"),
    ("libggml-cpu.so.0", F16_GEMM, "attention"),
    ("libggml-cpu.so.0", "ggml_vec_dot_f16", "attention"),
    ("libggml-cpu.so.0", "ggml_cpu_fp32_to_fp16", "attention"),
    ("libggml-cpu.so.0", "ggml_vec_soft_max_f32", "attention"),
    ("libggml-cpu.so.0", "ggml_compute_forward_flash_attn_ext_f16", "attention"),
    ("libggml-cpu.so.0", "ggml_compute_forward_mul_mat", "matmul_loop"),
    ("libgomp.so.1.0.0", "0x000000000001f7da", "threads"),
    ("libggml-cpu.so.0", "ggml_threadpool_chunk_add", "threads"),
    ("libc.so.6", "__memcpy_avx_unaligned_erms", "copies"),
    ("libggml-cpu.so.0", "ggml_compute_forward_rms_norm_mul_fused", "ggml_other"),
    ("libggml-cpu.so.0", "0x000000000010a2d5", "ggml_unnamed"),
    ("libpython3.11.so.1.0", "_PyEval_EvalFrameDefault", "other"),
])
def test_a_symbol_falls_in_its_class(dso, symbol, label):
    assert kp.classify(dso, symbol) == label


def test_a_report_sums_to_cpu_seconds_per_class():
    seconds = kp.cpu_seconds(REPORT)
    hz = kp.HZ
    assert seconds == pytest.approx({
        "weights": (998 + 100) / hz, "attention": (499 + 80 + 60) / hz,
        "matmul_loop": 40 / hz, "threads": 40 / hz, "copies": 20 / hz,
        "ggml_unnamed": 20 / hz, "ggml_other": 20 / hz, "other": 30 / hz})
    # Attention's share of the time inside llama.cpp's graph: copies and the rest are outside.
    ggml = kp.ggml_seconds(seconds)
    assert ggml == pytest.approx((998 + 100 + 499 + 80 + 60 + 40 + 40 + 20 + 20) / hz)
    assert kp.cpu_seconds("") == {}
