"""Networks the checker draws and rewrites: fixture specs (``spec``: structure first, then
weights, serializable to JSON), function-preserving transforms (``transforms``), the papers'
counterexample networks (``paper``, ``impossibility``) and every model randomizer (``randomize``)."""
