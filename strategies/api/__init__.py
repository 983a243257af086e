"""The strategies' side of the boundary with the daemon: the values that cross it (``model``:
bars, intents, order updates, the ``Strategy`` protocol), the session a bar belongs to, the
parameter models, and each strategy's ``descriptor``. Imports nothing else of ``strategies``."""
