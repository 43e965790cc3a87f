"""Runnable code of the site: every page includes its code from here (never pastes it)."""
