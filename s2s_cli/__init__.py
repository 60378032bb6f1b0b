"""s2s: train and use your own neural machine translation models from the command line."""

import os

# Quiet TensorFlow's C++ start-up chatter and pin Keras to TensorFlow before either is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
