# The dev environment. Hosts may share roles: a small install can put every
# group on two hosts. `ip` is the host's own address: services bind it and the
# firewalls of its peers name it (addresses here are names). One telemetry host;
# a second one adds a gateway to the pool (docs/architecture.md), with stores.host naming the stores' host.
from roles.preflight import check_inventory

monitoring = [
    ("mon1.dev.sentinel.internal", {"address": "mon1.dev.sentinel.internal", "ip": "10.30.0.11"}),
]
telemetry = [
    ("tel1.dev.sentinel.internal", {"address": "tel1.dev.sentinel.internal", "ip": "10.30.0.12"}),
]
app = [
    ("app1.dev.sentinel.internal", {"address": "app1.dev.sentinel.internal", "ip": "10.30.0.13"}),
]

check_inventory(globals())
