"""Alerting: the alert catalog, its rendering to Prometheus rules, and the routing settings.

`catalog` loads and checks files/alerting/catalog.yml; `rules` renders it to the
rule file the Prometheus role installs; `settings` declares the `alerting` group
data that the Alertmanager role turns into receivers and routes.
"""
