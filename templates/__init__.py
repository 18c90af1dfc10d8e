"""Jinja templates of the web app, shipped as package data."""
