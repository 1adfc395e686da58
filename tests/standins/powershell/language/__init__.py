"""The stand-in's small PowerShell: a parser over the tree-sitter grammar and an interpreter for a subset."""
