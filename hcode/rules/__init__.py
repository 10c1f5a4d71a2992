"""rules: the rule language and rulesets, as data.

`lang` (parser -> typed immutable IR), `yaml_lines` (YAML with line numbers), `ruleset`
(loading, inheritance, finding a version), `check` (static checks), `catalogue` (the shipped rulesets, loaded), `diff` (two ruleset
versions compared). May import only the root vocabulary: no warehouse, no engine.
"""
