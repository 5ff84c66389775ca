"""Dataset readers, one module per dataset, each registering into DATASET_REGISTRY (via vlprompt.engine).

Used from the repository root (train.py imports every module here), or copied into an existing
Dassl codebase. Not installed as a package: a top-level `datasets` would shadow HuggingFace's.
"""
