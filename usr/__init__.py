"""usr: a streaming feature-and-serving stack for unified search & recommendation ranking."""
__version__ = "0.1.0"
