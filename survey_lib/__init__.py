"""survey_lib: the Jupyter-first companion to "Adversarial Attack and Defense for Medical Image
Analysis" (Dong, Chen, Xie, Lai, Chen; ACM Computing Surveys 2024, arXiv 2303.14133).

Flow: config → data → models → train → attacks → defenses → evaluate → benchmark → report.
Import the module you need (``from survey_lib import data, train``); nothing heavy runs on import.
"""

__version__ = "0.1.0"
