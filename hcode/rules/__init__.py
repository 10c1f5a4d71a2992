"""rules: the rule language and rulesets, as data.

`lang` (the typed immutable IR: operators, nodes, one traversal), `parse` (tokenizer and
parser: text -> IR), `check` (name resolution and type checking), `yaml_lines` (YAML with
line numbers), `ruleset` (a ruleset as data: facts, rules, examples), `load` (loading a file,
inheritance, the header, finding a version), `definitions` (a file's facts and rules parsed,
checked and built; the problems found while loading), `examples` (typed values and the
embedded examples, their rows validated as ingest validates exports), `schema` (the JSON
Schema of ruleset files, for editors), `catalogue` (the shipped rulesets), `diff` (two
ruleset versions compared). May import only `hcode.validate` and the root vocabulary: no
warehouse, no engine, no ingest.
"""
