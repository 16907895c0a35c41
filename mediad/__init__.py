"""mediad: keeps the technical metadata of a media library in PostgreSQL up to date."""

__version__ = "0.1.0"
