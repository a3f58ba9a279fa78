"""Running published experiments: the Experiment base and registry (``experiment``), typed
``--set`` values (``config``), the results store (atomic, locked shards), torchrun sharding
(``distributed``) and summaries (``summary``)."""
