"""Features: the transform fitted once on training rows and applied everywhere, the split, statistics, and the
offline/online feature store.
"""
