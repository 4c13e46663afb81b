"""Colour themes as data files, loaded by the app."""
