"""Studies built on the methods: input alignment of modified-backprop rules (Zheng, Sang & Xu),
model-randomization sanity checks (Adebayo et al. 2018) and the I-GOS direction comparison."""
