"""Keep a person's Strava activities in their own self-hosted Directus."""

__version__ = "0.1.0"
