"""Trainers, one module per method, each registering a TrainerX into TRAINER_REGISTRY (via vlprompt.engine).

Used from the repository root (train.py imports every module here), or copied into an existing
Dassl codebase.
"""
