"""Infrastructure adapters: Flask-free implementations of the domain's ports."""
