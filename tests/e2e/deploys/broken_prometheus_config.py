"""Push a config promtool refuses through the role's own validate-then-swap operation."""

from roles._service.operations import validated_file
from roles.prometheus import CONFIG

validated_file(
    name="prometheus: a broken config",
    dest=CONFIG,
    content="global:\n  scrape_interval: soon\nscrape_configs: []\n",
    validate="/opt/prometheus/current/promtool check config {path}",
    user="root",
    group="prometheus",
    mode="0640",
)
