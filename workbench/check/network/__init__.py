"""Axiom checks on a given trained network (a torchvision CNN, the user's checkpoint, real images).

    report = workbench.check_network("integrated-gradients", network)       # network: load_network(...)
    workbench check integrated-gradients --model resnet18 --weights W.pt --source DIR

Modules: ``sites`` (where a traced model can be rewritten), ``rewrites`` (the transforms),
``network`` (checkpoint + images), ``axioms`` (drawn choices per axiom), ``check`` (search,
Report, replay files), ``job`` ((axiom, image) units through the results store and torchrun).
"""

from workbench.check.network.check import check_network, check_network_axiom, is_network_counterexample, replay_network
from workbench.check.network.job import NetworkCheck, run_network_check
from workbench.check.network.network import Network, load_checkpoint, load_network

__all__ = ["Network", "NetworkCheck", "check_network", "check_network_axiom", "is_network_counterexample", "load_checkpoint", "load_network",
           "replay_network", "run_network_check"]
