"""What the strategies share (pure): incremental indicators, the RSI Schmitt trigger, re-basing
across a split, entry sizing, risk gates and the emergency-stop rule. Imports ``api`` only."""
