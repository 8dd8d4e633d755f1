"""Looking inside trained networks (spec §5): pure, batched functions that return arrays.

`network.Network` holds a model and its variables and turns them into the functions the
techniques need (class scores, a layer's activation, the network split at a layer, each
under a chosen backward rule). The techniques take those functions and arrays and return
arrays; `report.py` draws them, and `visualize.py` runs them on a training workdir.
"""
