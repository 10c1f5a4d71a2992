"""report: renderers of frozen results (terminal, Markdown, HTML, files).

Computes nothing: every renderer takes a diff, a rules diff or the nightly summary.
May import `hcode.diff` and below.
"""
