"""Renderers of a `hcode.diff.Diff`: terminal (rich), Markdown, self-contained HTML, and the
files of `hcode diff --out DIR`. Computing lives in `hcode.diff`; nothing here changes data."""
