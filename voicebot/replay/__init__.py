"""Offline replay of recorded calls through the whole bot, on a virtual clock."""
