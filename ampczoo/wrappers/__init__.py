"""ampczoo.wrappers: Gymnasium wrappers."""

from ampczoo.wrappers.history import HistoryObservation

__all__ = ["HistoryObservation"]
