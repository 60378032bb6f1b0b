"""s2s: train and use your own neural machine translation models from the command line."""

import os

# Quiet TensorFlow's C++ start-up chatter and pin Keras to TensorFlow before either is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# oneDNN's CPU kernels: TensorFlow turns them on by itself only on CPUs with AVX-512, though they train faster on
# AVX2 as well (bench/RESULTS.md). Only before TensorFlow is imported, and never over the user's own setting.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Freed tensors stay in the heap for the next step instead of going back to the kernel (memory.py).
from s2s_cli.memory import keep_freed_memory  # noqa: E402

keep_freed_memory()

__version__ = "0.1.0"
