prometheus = {
    "retention_time": "15d",
    "retention_size": "50GB",
    "scrape_interval": "15s",
}

backend = {
    "trace_sampler": "parentbased_traceidratio",
    "trace_sample_ratio": 0.1,
    "sentry_traces_sample_rate": 0.1,
    "sentry_profiles_sample_rate": 0.05,
}
