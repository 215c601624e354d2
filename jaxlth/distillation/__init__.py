"""Dataset distillation: a few synthetic images per class learned to summarise a training set.

Pure functions of one synthetic set (no replicate axis); :mod:`~jaxlth.distillation.outer` vmaps
them over ``R`` independent sets and runs a chunk of outer iterations in one compiled program.

* :mod:`~jaxlth.distillation.synthetic_set`: the class-balanced layout, the start (real images of each
  class or noise), the units (the real data's stored units and the network's input units);
* :mod:`~jaxlth.distillation.student`: SGD on the synthetic set (the inner loop of MTT, and a
  fresh network trained on a distilled set);
* :mod:`~jaxlth.distillation.mtt`: matching training trajectories (Cazenavette et al. 2022);
* :mod:`~jaxlth.distillation.dm`: distribution matching (Zhao & Bilen 2023), the cheaper method;
* :mod:`~jaxlth.distillation.outer`: the learned variables, their optax optimiser and the outer loop.
"""
