"""TensorRT engines for the UNet and the VAE encoder/decoder.

Nothing in this package imports `tensorrt` at import time: the module is passed in (from
`engine.accel.choose.import_tensorrt()`, or a fake in tests) to the few functions that call it.
"""
