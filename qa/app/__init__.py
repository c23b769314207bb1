"""Streamlit glue: the ONLY part of qa that imports streamlit (cached wrappers, widgets, state)."""
