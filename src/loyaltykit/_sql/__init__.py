"""Private parts of the SQLAlchemy Core backend; the public face is :mod:`loyaltykit.sql`."""
