"""Published weights: reading their files without running code, and mapping them onto convzoo
networks."""
