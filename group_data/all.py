# Settings shared by every environment; <env>.py overrides them.
# Each role's settings and defaults are declared in roles/<role>/settings.py:
# an unknown or misspelled key here is refused before any host is contacted.

# Release archives come from upstream; the lab points this at its mirror.
artifact_base_url = "https://github.com"

prometheus = {
    "retention_time": "15d",
    "scrape_interval": "15s",
}

object_store = {
    "buckets": ["loki", "tempo"],
}
