"""diff: what changed between two sides (runs, rulesets or evaluations), as frozen data.

`changes` (the diff itself), `reasons` (a sentence for every change), `sides` (loading a
side from a run or a ruleset). Rendering lives in `hcode.report`. May import `hcode.runs`
and below.
"""
