"""``ENGINE = "likha_realtime.db.postgresql"``: Django's PostgreSQL backend with ``pool.QuietCheck`` (``base``)."""
