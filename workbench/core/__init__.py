"""The floor everything stands on: errors, input validation, the one ``key=value`` parser,
autograd helpers, the model guard (no model left modified or hooked), tolerances, memory
budgets, layer coverage (what a method models, what it must refuse) and degenerate inputs (kinks,
ties). Nothing here imports a room above it."""
