"""Paths and baselines of path methods: quadrature rules (nodes, weights, exactness degree),
baselines (zero, blurred, noise, ...) and the exact walk along a straight path through the linear
regions of a piecewise-linear network."""
