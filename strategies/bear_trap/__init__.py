"""Bear Trap (strategies.md section 3), pure: the strategy (``strategy``), its parameters,
per-symbol state, entry rule, trade plan, order bookkeeping and re-basing across a split."""
