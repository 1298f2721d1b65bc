"""Deployment: ONNX export with a parity check, ONNX Runtime int8 quantisation and CPU latency variants.

``onnx_export`` turns a task's inference module into an ONNX graph and checks it against PyTorch;
``quantize`` calibrates a static int8 copy of that graph on training images; ``variants`` runs every
latency variant (eager, channels_last, torch.compile, ONNX Runtime fp32/int8, bf16 autocast) on the same
inputs and compares each with eager fp32: p50/p90 latency at batch 1, accuracy / F1 / positive-class
recall change and the share of predictions that agree.
"""
