"""The operator's commands (``status``, ``halt``, ``resume``, ``flatten``, ``trades``)."""
