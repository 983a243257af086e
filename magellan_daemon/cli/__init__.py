"""The ``magellan`` command (``main``) and its sub-commands: the top layer, which may import
anything and which nothing imports."""
