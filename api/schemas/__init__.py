"""Request and response schemas shared by route modules."""
