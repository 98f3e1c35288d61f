"""The pure-NumPy reference backend (``memory://``): exact, in-process, not persistent."""
