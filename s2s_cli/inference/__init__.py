"""Translating with a trained model: graph search (greedy, beam), the Translator, and exports."""
