"""The pure core: rules of matching, requests, offers and money. No I/O here."""
