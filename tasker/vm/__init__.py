"""The interpreter: machine loop, result store and substitution, condition evaluation, fork/join."""
