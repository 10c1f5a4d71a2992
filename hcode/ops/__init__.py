"""ops: the nightly batch and the accountable operations around it.

`nightly` (the batch), `freshness` (late feeds), `guard` (the publish guard), `overrides`,
`retract`, `purge`, `retention` (the nightly purge of place scans), `companions` (the companions test on a night's place scans), `demo` (the
whole job on the bundled night).
May import everything but `hcode.cli`.
"""
