"""Text -> AST: the task-file and condition parsers and the AST node classes."""
