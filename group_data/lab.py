# The lab: real hosts in network namespaces, artifacts from the local mirror
# (built from upstream Go modules by `python -m lab up`).
artifact_base_url = "http://10.213.0.1:8080"

prometheus = {
    "retention_time": "15d",
    "scrape_interval": "5s",
    "evaluation_interval": "5s",
}

backend = {
    "version": "0.0.0-lab",
    "trace_sampler": "parentbased_always_on",
    "trace_sample_ratio": 1.0,
    "sentry_traces_sample_rate": 1.0,
    "standin": True,
}
