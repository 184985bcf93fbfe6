"""Canonical emotion names. Dataset plugins map their native label codes onto these."""
from __future__ import annotations

#: The seven basic expressions in ferbench's canonical order, then contempt (AffectNet-8, FERPlus).
BASIC7: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
BASIC8: tuple[str, ...] = BASIC7 + ("contempt",)
#: The emotionless expression (a "poker face"), by its canonical name.
NEUTRAL: str = "neutral"
