"""engine: the compiled evaluation.

`compile` (IR -> Polars, one function per node), `pushdown` (the filters SQL can apply
while reading), `sources` (where feed rows come from: frames or the warehouse),
`evaluate` (facts -> rules -> colour with evidence), `sentences` (explanations),
`examples` (a ruleset's own examples), `reference` (the plain-Python reference engine the
tests compare with). May import `hcode.rules`, `hcode.store` and the root vocabulary.
"""
