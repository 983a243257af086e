"""Pure strategies: bars and fills in, order intents out."""
