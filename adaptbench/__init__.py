"""adaptbench: a notebook-first workbench for adaptive computation in language models."""
__version__ = "0.1.0"
