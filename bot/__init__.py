"""stockbot: one stock count per product in a Google Sheet, pushed to every marketplace."""

__version__ = "0.1.0"
