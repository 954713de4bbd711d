"""Choosing what to label next: ``curate select`` (``stage``) builds the candidate pool (``pool``),
numbers the labeling round and runs a strategy (``round``, strategies by name in ``registry``),
and hands the batch off to a labeling tool (``handoff``, ``exports``)."""

STAGE = "select"
