# The dev environment. Hosts may share roles: a small install can put every
# group on two hosts, a large one spreads them over twenty.
from roles.preflight import check_inventory

monitoring = [
    ("mon1.dev.sentinel.internal", {"address": "mon1.dev.sentinel.internal"}),
]
telemetry = [
    ("tel1.dev.sentinel.internal", {"address": "tel1.dev.sentinel.internal"}),
]
app = [
    ("app1.dev.sentinel.internal", {"address": "app1.dev.sentinel.internal"}),
]

check_inventory(globals())
