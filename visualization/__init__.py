"""Looking inside trained networks: pure, batched functions that return arrays, and the run
that draws them for a training workdir.

`network.Network` holds a model and its variables and turns them into the functions the
techniques need (class scores, a layer's activation, the network split at a layer, each
under a chosen backward rule). `attribution`, `synthesis`, `units`, `receptive` and `sanity`
take those functions and arrays and return arrays. `plan` checks the visualize.* settings and
decides the layers, units and classes; `techniques` runs each technique, saving its arrays and
drawing its picture with `drawing`; `page` writes index.html; `suite` runs it all for
`visualize.py`.
"""
