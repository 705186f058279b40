backend = {
    "trace_sampler": "parentbased_always_on",
    "trace_sample_ratio": 1.0,
    "sentry_traces_sample_rate": 1.0,
}
