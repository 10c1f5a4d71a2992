"""rules: the rule language and rulesets, as data.

`lang` (the typed immutable IR: operators, nodes, one traversal), `parse` (tokenizer and
parser: text -> IR), `check` (name resolution and type checking), `yaml_lines` (YAML with
line numbers), `ruleset` (a ruleset as data: facts, rules, examples), `load` (loading a file,
inheritance, checks, finding a version), `examples` (typed values and examples of a file),
`catalogue` (the shipped rulesets), `diff` (two ruleset versions compared). May import only the root vocabulary: no warehouse,
no engine.
"""
