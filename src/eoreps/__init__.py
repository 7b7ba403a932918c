"""eoreps: label-efficient representation learning for Earth observation and for neural networks."""

__version__ = "0.1.0"
