"""The instruction graph: instructions, lowering from the workflow, and plan renderings."""
