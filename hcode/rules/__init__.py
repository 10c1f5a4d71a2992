"""rules: the rule language and rulesets, as data.

`lang` (parser -> typed immutable IR), `yaml_lines` (YAML with line numbers), `ruleset`
(loading, inheritance, finding a version), `check` (static checks), `example_rows` (the
embedded examples, their rows validated as ingest validates exports), `schema` (the JSON
Schema of ruleset files, for editors), `catalogue` (the shipped rulesets, loaded), `diff`
(two ruleset versions compared). May import only `hcode.validate` and the root vocabulary:
no warehouse, no engine, no ingest.
"""
