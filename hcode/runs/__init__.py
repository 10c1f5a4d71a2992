"""runs: evaluations kept in the warehouse.

`store` (storing a run atomically, reading its codes), `compute` (evaluate and store
in one call), `explain` (one person's code),
`history` (a person across published runs), `export` (the push file).
May import `hcode.engine` and below.
"""
