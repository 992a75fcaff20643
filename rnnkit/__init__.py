"""rnnkit: recurrent neural networks from the equations to trained, useful models."""

__version__ = "0.1.0"
