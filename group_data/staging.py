backend = {
    "trace_sampler": "parentbased_traceidratio",
    "trace_sample_ratio": 0.5,
    "sentry_traces_sample_rate": 0.5,
}
