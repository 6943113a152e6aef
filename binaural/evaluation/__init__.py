"""Evaluation: the metrics of binaural separation (:mod:`.metrics`) and the report with its
figures and listening page (:mod:`.report`)."""
