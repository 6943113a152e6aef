"""Real time: a causal model run chunk by chunk. :mod:`.streaming` is the PyTorch reference step
(and the test oracle of the others), :mod:`.numba_engine` the step compiled by numba (the fast
CPU engine), :mod:`.onnx_engine` the step exported to ONNX and run by onnxruntime."""
