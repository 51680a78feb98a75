"""Triton kernels of adaptbench, exported from nbs/kernels/; imported as `adaptbench.kernels`."""
