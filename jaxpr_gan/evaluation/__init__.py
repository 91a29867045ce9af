"""Evaluation: restoring a run's generator (restore.py), its scores against the synthetic truth
(evaluate.py, intensity.py, groups.py), the distribution metrics and the judge (suite.py,
judge.py, metrics/), and the report (report.py)."""
