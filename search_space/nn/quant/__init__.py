"""Fake quantization in torch: quantizers, quantized layers, a spec's policy applied to a model.

See `search_space.quant` for the registry of quantizer names and `docs/quantization.md` for
which tensors each mixer quantizes.
"""
