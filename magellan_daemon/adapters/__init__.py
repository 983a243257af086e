"""The broker port's implementations: ``alpaca`` (alpaca-py over HTTP and websockets, the
only code that imports ``alpaca``) and ``inprocess`` (the simulator's exchange core in the
same process, for ``magellan backtest``)."""
