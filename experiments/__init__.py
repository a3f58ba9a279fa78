"""Published experiments, one module per claim; run with `workbench experiment NAME`."""
