"""HTTP routes: accounts, preferences, the portal API, and operations."""
